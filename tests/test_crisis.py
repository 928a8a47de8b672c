"""bot/conversation/crisis.py against the labelled corpus in tests/corpora/crisis.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bot.conversation.crisis import PRIORITY, CrisisDetector, CrisisKind
from bot.conversation.matching import VocabularyError
from bot.conversation.vocabulary import Vocabulary

VOCABULARY_PATH = Path(__file__).resolve().parents[1] / "flows" / "vocabulary.yaml"
detect = CrisisDetector.from_file(VOCABULARY_PATH).detect
CORPUS = yaml.safe_load((Path(__file__).parent / "corpora" / "crisis.yaml").read_text(encoding="utf-8"))
CASES = [(text, CrisisKind(kind) if kind else None) for text, kind in CORPUS["positives"] + CORPUS["negatives"]]
VOCABULARY = yaml.safe_load(VOCABULARY_PATH.read_text(encoding="utf-8"))


def test_corpus_size_and_balance():
    assert len(CASES) >= 100
    kinds = [kind for _, kind in CASES]
    for kind in CrisisKind:
        assert kinds.count(kind) >= 15, kind
    assert kinds.count(None) >= 50


def test_recall_and_precision_on_the_corpus():
    """Recall: a crisis is seen as one. Precision: what is seen as a crisis is one."""
    predicted = [(detect(text), kind) for text, kind in CASES]
    positives = sum(kind is not None for _, kind in predicted)
    flagged = sum(got is not None for got, _ in predicted)
    seen = sum(got is not None and kind is not None for got, kind in predicted)
    assert seen / positives >= 0.95, f"recall {seen / positives:.3f}"
    assert seen / flagged >= 0.9, f"precision {seen / flagged:.3f}"


@pytest.mark.parametrize("text, kind", [pytest.param(t, k, id=repr(t)) for t, k in CASES])
def test_each_case_gets_its_kind(text, kind):
    assert detect(text) is kind


@pytest.mark.parametrize(
    "text",
    [
        "I WANT TO DIE",
        "i want to die.",
        "i want 2 die",
        "I want   to die!!!",
        "i want to die 😢",
        "Quiero MORIR",
        "me quiero morír",
    ],
)
def test_case_punctuation_emoji_and_accents_do_not_matter(text):
    assert detect(text) is CrisisKind.SELF_HARM


def test_priority_is_overdose_self_harm_abuse_violence():
    assert PRIORITY == (CrisisKind.OVERDOSE, CrisisKind.SELF_HARM, CrisisKind.ABUSE, CrisisKind.VIOLENCE)
    assert detect("I took all my pills and I want to die") is CrisisKind.OVERDOSE
    assert detect("my husband hits me and I want to kill myself") is CrisisKind.SELF_HARM
    assert detect("my boyfriend has a gun") is CrisisKind.ABUSE
    assert detect("he has a gun") is CrisisKind.VIOLENCE


def test_a_figure_of_speech_does_not_hide_a_crisis_in_the_same_message():
    assert detect("this rent is killing me and my boyfriend hits me") is CrisisKind.ABUSE
    assert detect("got my flu shot, then someone got shot outside") is CrisisKind.VIOLENCE


@pytest.mark.parametrize("text", ["", "   ", "?!", "🙏🙏"])
def test_empty_messages(text):
    assert detect(text) is None


def test_the_runtimes_detector_is_the_one_of_its_flows_folder():
    detector = Vocabulary.from_flows(VOCABULARY_PATH.parent).crisis
    assert all(detector.detect(text) is detect(text) for text, _ in CASES)


def test_unknown_word_set_is_reported_with_the_pattern():
    bad = copy.deepcopy(VOCABULARY)
    bad["crisis"]["violence"]["en"].append("{nobody} shot me")
    with pytest.raises(VocabularyError, match="nobody"):
        CrisisDetector(bad, "bad.yaml")


def test_broken_pattern_is_reported_with_its_kind():
    bad = copy.deepcopy(VOCABULARY)
    bad["crisis"]["abuse"]["es"].append("me (pega")
    with pytest.raises(VocabularyError, match="crisis.abuse"):
        CrisisDetector(bad, "bad.yaml")
