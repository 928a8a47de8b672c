"""How well the bot understands everyday words it was not tuned on (tests/corpora/needs.yaml).

The accuracy test reads the `held_out` half only and prints figures, never phrases: the
vocabulary is tuned on the `tune` half, whose misses `python tests/test_understanding.py` lists.
Keep it that way, or the figure stops meaning anything.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python tests/test_understanding.py` runs from anywhere

from bot.conversation.crisis import CrisisDetector  # noqa: E402
from bot.conversation.flows import load_flows  # noqa: E402
from bot.conversation.matching import Matcher, normalize  # noqa: E402

VOCABULARY_PATH = ROOT / "flows" / "vocabulary.yaml"
detect = CrisisDetector.from_file(VOCABULARY_PATH).detect
CORPUS = yaml.safe_load((ROOT / "tests" / "corpora" / "needs.yaml").read_text(encoding="utf-8"))
HELD_OUT = CORPUS["held_out"]  # the only half a test reads
CATEGORIES = Matcher.from_file(VOCABULARY_PATH).needs
LABELS = (*CATEGORIES, "none")
MIN_ACCURACY = 0.92


class Reader:
    """The need a first text starts, as the engine picks it: of the needs named, the flow to answer first."""

    def __init__(self) -> None:
        self.matcher = Matcher.from_file(VOCABULARY_PATH)
        self.flows = load_flows(ROOT / "flows", categories=set(CATEGORIES))

    def need(self, text: str) -> str:
        return self.flows.first_need(self.matcher.categories(text)) or "none"


def score(reader: Reader, half: dict) -> tuple[list[tuple[str, str, str, str]], str]:
    """(misses as (language, text, expected, got), a table of accuracy overall, per need and per language)."""
    right: Counter = Counter()
    total: Counter = Counter()
    misses = []
    for lang, entries in half.items():
        for text, need in entries:
            got = reader.need(text)
            for key in ("all", lang, need):
                total[key] += 1
                right[key] += got == need
            if got != need:
                misses.append((lang, text, need, got))
    rows = [
        f"{key:<9} {right[key] / total[key]:.3f}  ({right[key]}/{total[key]})"
        for key in ("all", *half, *LABELS)
        if total[key]
    ]
    return misses, "\n".join(rows)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def test_held_out_accuracy(reader, capsys):
    misses, table = score(reader, HELD_OUT)
    accuracy = 1 - len(misses) / sum(len(entries) for entries in HELD_OUT.values())
    with capsys.disabled():  # so CI logs show the figures of a passing run too
        print(f"\nunderstanding, held-out half of tests/corpora/needs.yaml:\n{table}")
    assert accuracy >= MIN_ACCURACY, f"held-out accuracy {accuracy:.3f} < {MIN_ACCURACY}\n{table}"


def test_held_out_half_covers_every_need_in_both_languages_and_the_corpus_is_big_enough():
    for lang in ("en", "es"):
        labels = Counter(need for _, need in HELD_OUT[lang])
        assert set(labels) == set(LABELS), lang
        assert min(labels.values()) >= 4, (lang, labels)
    sizes = {lang: len(CORPUS["tune"][lang]) + len(HELD_OUT[lang]) for lang in ("en", "es")}
    assert sum(sizes.values()) >= 300
    assert sizes["es"] >= sum(sizes.values()) / 3


def test_held_out_phrases_reach_the_matcher():
    """None is danger now (the crisis detector would answer it first) or a phrase the
    regression corpus already holds (tuned on: it would say nothing about new words)."""
    tuned = yaml.safe_load((ROOT / "tests" / "corpora" / "intents.yaml").read_text(encoding="utf-8"))
    known = {normalize(text) for text, _ in tuned["category"]}
    for entries in HELD_OUT.values():
        for text, _ in entries:
            assert detect(text) is None, text
            assert normalize(text) not in known, text


if __name__ == "__main__":  # the tuning aid: the tune half's figures and misses, never the held-out half's
    tune_misses, tune_table = score(Reader(), CORPUS["tune"])
    print(tune_table)
    for miss in tune_misses:
        print("  {}  {!r}: expected {}, got {}".format(*miss))
