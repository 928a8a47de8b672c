"""bot/conversation/matching.py against the labelled corpus in tests/corpora/intents.yaml."""

from __future__ import annotations

import timeit
from pathlib import Path

import pytest
import yaml

from bot.conversation.matching import (
    Matcher,
    Speller,
    VocabularyError,
    everyday_words,
    expand,
)

VOCABULARY_PATH = Path(__file__).resolve().parents[1] / "flows" / "vocabulary.yaml"
CORPUS = yaml.safe_load((Path(__file__).parent / "corpora" / "intents.yaml").read_text(encoding="utf-8"))
OPTIONS = {name: [(value, tuple(words)) for value, words in entries] for name, entries in CORPUS["options"].items()}


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher.from_file(VOCABULARY_PATH)


def cases(kind: str) -> list:
    return [pytest.param(*case, id=f"{case[0]!r}") for case in CORPUS[kind]]


@pytest.mark.parametrize("text, expected", cases("category"))
def test_category(matcher, text, expected):
    assert matcher.category(text) == expected


@pytest.mark.parametrize("text, expected", cases("global_word"))
def test_global_word(matcher, text, expected):
    assert matcher.global_word(text) == expected


@pytest.mark.parametrize("text, expected", cases("yes_no"))
def test_yes_no(matcher, text, expected):
    assert matcher.yes_no(text) is expected


@pytest.mark.parametrize("text, expected", cases("zip_code"))
def test_zip_code(matcher, text, expected):
    assert matcher.zip_code(text) == expected


@pytest.mark.parametrize("text, expected", cases("number"))
def test_number(matcher, text, expected):
    assert matcher.number(text) == expected


@pytest.mark.parametrize("text, expected", cases("language"))
def test_language(matcher, text, expected):
    assert matcher.language(text) == expected


@pytest.mark.parametrize("text, options, expected", cases("choice"))
def test_choice(matcher, text, options, expected):
    assert matcher.choice(text, OPTIONS[options]) == expected


def test_corpus_covers_every_category_in_both_languages(matcher):
    labelled = [label for _, label in CORPUS["category"] if label]
    assert len(CORPUS["category"]) >= 80
    assert set(labelled) == set(matcher.needs)
    assert all(labelled.count(c) >= 10 for c in matcher.needs)


def test_choice_of_an_empty_list_or_empty_text_is_none(matcher):
    assert matcher.choice("1", []) is None
    assert matcher.choice("", OPTIONS["menu"]) is None


def test_normalize_folds_case_accents_punctuation_emoji_and_stretching(matcher):
    assert matcher.normalize("  ¡Necesito MÉDICO!!! 🙏 ") == "necesito medico"
    assert matcher.normalize("I can't… helppp") == "i cant help"
    assert matcher.normalize("64111") == "64111"


def test_the_spelling_step_never_changes_a_real_word_but_fixes_a_typo_or_a_word_spelt_by_ear():
    speller = Speller(["dolor", "eviction", "doctor"], everyday_words(("en", "es")))
    assert speller.correct("door") == "door"  # English: not "dolor" (pain)
    assert speller.correct("dolr") == "dolor"
    assert speller.correct("docter") == "doctor"  # an unstressed vowel can be any vowel
    assert speller.correct("evicshun") == "eviction"
    assert speller.correct("evicshunz") == "evicshunz"


def test_named_option_is_the_one_option_a_whole_message_uses(matcher):
    options = [
        ("body", ["doctor", "fever"]),
        ("teeth", ["tooth", "root canal", "(dentist|dentista)"]),
        ("mind", ["depressed"]),
    ]
    assert matcher.named_option("my toth hurts so bad", options) == "teeth"  # spelling corrected as for needs
    assert matcher.named_option("i need a root canal", options) == "teeth"
    assert matcher.named_option("necesito un dentista", options) == "teeth"
    assert matcher.named_option("my tooth hurts and im depressed", options) is None
    assert matcher.named_option("canal", options) is None
    assert matcher.named_option("3", options) is None


def test_expand_alternatives_and_optional_groups():
    assert expand("lights (got|) (cut|shut) off") == [
        "lights got cut off",
        "lights got shut off",
        "lights cut off",
        "lights shut off",
    ]


def test_unquoted_yes_in_a_word_list_is_reported_with_its_key():
    bad = yaml.safe_load(VOCABULARY_PATH.read_text(encoding="utf-8"))
    bad["yes_no"]["yes"].append(True)
    with pytest.raises(VocabularyError, match="yes_no.yes"):
        Matcher(bad, "bad.yaml")


def test_a_phrase_in_two_categories_is_reported():
    bad = yaml.safe_load(VOCABULARY_PATH.read_text(encoding="utf-8"))
    bad["categories"]["food"]["en"].append("rent")
    with pytest.raises(VocabularyError, match="already housing"):
        Matcher(bad, "bad.yaml")


def test_category_is_well_under_a_millisecond(matcher):
    texts = [text for text, _ in CORPUS["category"]]
    runs = 20
    seconds = timeit.timeit(lambda: [matcher.category(t) for t in texts], number=runs)
    assert seconds / (runs * len(texts)) < 0.001
