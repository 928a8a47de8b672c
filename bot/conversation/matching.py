"""Free text to a need, a global word, yes/no, a choice, a ZIP code or a language.

Everything is built once from the flows folder's vocabulary.yaml (see vocabulary.py); a message costs a few dictionary
look-ups and, for a word the vocabulary does not know, one rapidfuzz pass over a few
hundred vocabulary words (cached per word).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, Indel
from wordfreq import get_frequency_dict

VOCABULARY_FILE = "vocabulary.yaml"  # in the flows folder (FLOWS_DIR)
# The global words the engine acts on; "lang:<code>" for each language the vocabulary has joins them.
GLOBAL_WORDS = ("menu", "person", "thanks")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_APOSTROPHES = re.compile(r"['’‘`´]")
_NON_WORD = re.compile(r"[^a-z0-9 ]+")  # plain spaces are left for split()
_COMBINING = re.compile(r"[\u0300-\u036f]")  # the accents of Latin letters, once decomposed
_STRETCHED = re.compile(r"([a-z])\1{2,}")  # letters only: "64111" keeps its three 1s
_GROUP = re.compile(r"\(([^()]*)\)")
# Five digits not inside a longer run of digits or a dashed number (phone numbers), ZIP+4 allowed.
_ZIP = re.compile(r"(?<![\d$+\-])(\d{5})(?:-\d{4})?(?!\d|-\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_LEADING_DIGITS = re.compile(r"\d+")
_ORDINAL_DIGITS = re.compile(r"(\d+)(?:st|nd|rd|th)?")
# Words around a number that still make the whole message a pick: "option 2", "#2", "el 2".
_PICK_NOISE = frozenset(
    {
        "option",
        "opcion",
        "number",
        "numero",
        "num",
        "the",
        "el",
        "la",
        "i",
        "want",
        "choose",
        "pick",
        "quiero",
        "elijo",
        "escojo",
    }
)
_PRONOUN_ONE = frozenset({"one", "uno", "una"})  # "the first one", "la primera"
_CHOICE_NOISE = frozenset({"or", "and", "o", "y", "of", "de", "del", "for", "para", "on", "at"})
# A thumb or a check mark is a common answer from people who type little; normalising would erase it.
_EMOJI_ANSWERS = {"👍": True, "👌": True, "✅": True, "✔": True, "👎": False, "❌": False}
_EMOJI_DECORATION = re.compile(r"[\U0001F3FB-\U0001F3FF\uFE0F\s]")  # skin tones, variation selector


class VocabularyError(ValueError):
    """The vocabulary file is unreadable or malformed; the message names the file and the key."""


def strip_accents(text: str) -> str:
    """The text without accents (médico -> medico, año -> ano)."""
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def normalize(text: str) -> str:
    """Lower case, no accents, apostrophes dropped (can't -> cant), other punctuation and
    emoji as spaces, letters stretched three times or more cut to one (helppp -> help)."""
    text = _NON_WORD.sub(" ", _APOSTROPHES.sub("", strip_accents(text.casefold())))
    return " ".join(_STRETCHED.sub(r"\1", text).split())


def expand(phrase: str) -> list[str]:
    """Every spelling of a phrase written with (a|b) groups; an empty alternative makes a group optional."""
    group = _GROUP.search(phrase)
    if group is None:
        return [" ".join(phrase.split())]
    head, tail = phrase[: group.start()], phrase[group.end() :]
    return [spelling for alt in group.group(1).split("|") for spelling in expand(head + alt + tail)]


def load_vocabulary(path: Path) -> dict[str, Any]:
    """The vocabulary YAML as a mapping."""
    try:
        with open(path, encoding="utf-8") as file:
            data = yaml.load(file, Loader=_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise VocabularyError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise VocabularyError(f"{path}: expected a mapping at the top level")
    return data


def section(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """A required mapping inside the vocabulary."""
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise VocabularyError(f"{where}: '{key}' must be a mapping")
    return value


def strings(value: Any, where: str) -> list[str]:
    """A list of strings; an unquoted yes/no/on/off (read by YAML as a boolean) is an error."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise VocabularyError(f"{where}: expected a list of quoted strings")
    return value


def languages_of(vocabulary: Mapping[str, Any], source: str) -> tuple[str, ...]:
    """The languages a vocabulary has words for: the keys of its `common:` lists (en, es, …)."""
    languages = tuple(section(vocabulary, "common", source))
    if not languages or not all(isinstance(lang, str) for lang in languages):
        raise VocabularyError(f"{source}: 'common' must list everyday words under each language code")
    return languages


@lru_cache(maxsize=4)
def everyday_words(languages: tuple[str, ...]) -> frozenset[str]:
    """Words in everyday use in these languages (once per million words or more: wordfreq's
    "small" lists), normalised as messages are. A real word is never taken for a misspelt need
    word: "door" stays "door", not "dolor" (pain)."""
    return frozenset(
        word
        for lang in languages
        for listed in get_frequency_dict(lang, wordlist="small")
        if (word := normalize(listed)).isalpha()
    )


class Speller:
    """Puts a misspelt word back to the vocabulary word it is one typo from (two for long words).

    Conservative on purpose, because a wrong guess turns an ordinary word into a need
    ("used" is not "sued", "door" is not "dolor"): words in `known` are never changed; the
    first letter must match (or the first two be swapped); a changed letter must be a
    neighbour on a keyboard or a phone keypad, or sound alike; a short word only loses,
    gains or swaps letters. A word spelt by ear ("evicshun") is tried with the usual
    spelling of its ending.
    """

    def __init__(self, targets: Iterable[str], known: Iterable[str] = (), min_length: int = 3) -> None:
        targets = frozenset(targets)
        self._targets = sorted(t for t in targets if len(t) >= 4 and t.isalpha())
        self._known = frozenset(known) | targets
        self._min_length = min_length
        anagrams: dict[str, str | None] = {}
        for target in self._targets:
            key = "".join(sorted(target))
            anagrams[key] = None if key in anagrams else target  # two targets, same letters: no guess
        self._anagrams = {key: target for key, target in anagrams.items() if target}
        self.correct = lru_cache(maxsize=4096)(self._correct)

    def _correct(self, token: str) -> str:
        if len(token) < self._min_length or token in self._known or not token.isalpha():
            return token
        found = self._nearest(token)
        if found != token:
            return found
        for heard, written in _HEARD_ENDINGS:
            if token.endswith(heard):
                return self._nearest(token[: -len(heard)] + written, unchanged=token)
        return token

    def _nearest(self, token: str, unchanged: str | None = None) -> str:
        """The target one plausible typo from `token`, else `unchanged` (by default the token itself)."""
        if len(token) <= 4:
            scorer, cutoff = Indel.distance, 1
        else:
            scorer, cutoff = OSA.distance, 2 if len(token) >= 10 else 1
        for target, distance, _ in process.extract(token, self._targets, scorer=scorer, score_cutoff=cutoff, limit=5):
            if (distance < 2 or len(target) >= 10) and _plausible_typo(token, target):
                return target
        swapped = self._anagrams.get("".join(sorted(token))) if len(token) <= 4 else None
        return swapped if swapped and _plausible_typo(token, swapped) else unchanged or token


def _plausible_typo(token: str, target: str) -> bool:
    """The kind of slip a thumb (or spelling by ear) makes, rather than another word."""
    if token[0] != target[0] and token[:2] != target[1::-1]:
        return False
    if len(token) != len(target) or sorted(token) == sorted(target):
        return True  # letters added, dropped or swapped
    return all(b in _NEIGHBOURS.get(a, ()) for a, b in zip(token, target, strict=False) if a != b)


def _neighbours() -> dict[str, frozenset[str]]:
    """Letters next to each other on a QWERTY keyboard or on the same key of a phone keypad,
    and letters that sound alike to someone who spells by ear ("balasera", "violensia",
    "docter": an unstressed vowel can be any vowel)."""
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    near: dict[str, set[str]] = {c: set() for row in rows for c in row}
    for r, row in enumerate(rows):
        for c, key in enumerate(row):
            near[key].update(row[max(c - 1, 0) : c + 2])
            if r + 1 < len(rows):  # a lower row sits half a key to the right
                for other in rows[r + 1][max(c - 1, 0) : c + 1]:
                    near[key].add(other)
                    near[other].add(key)
    for group in (
        "abc",
        "def",
        "ghi",
        "jkl",
        "mno",
        "pqrs",
        "tuv",
        "wxyz",
        "csz",
        "ck",
        "kq",
        "bv",
        "iy",
        "gj",
        "aeiou",
    ):
        for key in group:
            near[key].update(group)
    return {key: frozenset(others - {key}) for key, others in near.items()}


_NEIGHBOURS = _neighbours()
# Endings written as they sound, and their spelling: "evicshun", "medicashun", "addicshon".
_HEARD_ENDINGS = (("shun", "tion"), ("shon", "tion"), ("chun", "tion"))


class Matcher:
    """Reads residents' words; see docs/CONTRACTS.md. Built once, then shared (read-only)."""

    def __init__(self, vocabulary: Mapping[str, Any], source: str = "vocabulary") -> None:
        self._skip = frozenset(strings(vocabulary.get("skip"), f"{source}: skip"))
        self._fillers = frozenset(strings(vocabulary.get("fillers"), f"{source}: fillers"))
        self._polite = frozenset(strings(vocabulary.get("polite"), f"{source}: polite"))
        self.languages = languages_of(vocabulary, source)
        common = section(vocabulary, "common", source)
        common_words = {lang: _words(strings(common.get(lang), f"{source}: common.{lang}")) for lang in self.languages}
        protected = _words(strings(vocabulary.get("protected"), f"{source}: protected"))
        categories = section(vocabulary, "categories", source)
        self.needs = tuple(categories)  # the needs it reads; Vocabulary.from_flows checks them against the directory
        self._phrases, category_words = self._build_categories(categories, source)
        self._lengths = _lengths_by_first_word(self._phrases)
        known = protected | self._skip | self._fillers | set().union(*common_words.values())
        known |= everyday_words(self.languages)
        self._speller = Speller(set().union(*category_words.values()), known)
        self._global = self._build_global(section(vocabulary, "global", source), source)
        self._global_speller = Speller((p for p in self._global if " " not in p), known)
        self._build_yes_no(section(vocabulary, "yes_no", source), source)
        self._numbers = _number_words(section(vocabulary, "numbers", source), f"{source}: numbers")
        self._ordinals = _number_words(section(vocabulary, "ordinals", source), f"{source}: ordinals")
        self._language_words = _language_words(common_words, category_words)

    @classmethod
    def from_file(cls, path: Path) -> Matcher:
        return cls(load_vocabulary(path), str(path))

    # -- building -----------------------------------------------------------------------

    def _tokens(self, text: str) -> tuple[str, ...]:
        """Normalised words without the skip words (articles, possessives)."""
        return tuple(t for t in normalize(text).split() if t not in self._skip)

    def _build_categories(
        self, categories: Mapping[str, Any], source: str
    ) -> tuple[dict[tuple[str, ...], str], dict[str, set[str]]]:
        """Phrase (as words) -> category, and the words of each language's phrases."""
        if not categories:
            raise VocabularyError(f"{source}: categories must name the needs (the directory's categories)")
        phrases: dict[tuple[str, ...], str] = {}
        words: dict[str, set[str]] = {lang: set() for lang in self.languages}
        for category, by_language in categories.items():
            where = f"{source}: categories.{category}"
            if not isinstance(by_language, Mapping) or not set(by_language) <= set(self.languages):
                raise VocabularyError(f"{where}: expected lists under {' and '.join(self.languages)}")
            for lang, entries in by_language.items():
                for entry in strings(entries, f"{where}.{lang}"):
                    for spelling in expand(entry):
                        key = self._tokens(spelling)
                        if key and phrases.setdefault(key, category) != category:
                            raise VocabularyError(f"{where}.{lang}: {spelling!r} is already {phrases[key]}")
                        words[lang].update(key)
        return phrases, words

    def _build_global(self, entries: Mapping[str, Any], source: str) -> dict[str, str]:
        """Filler-free phrase -> global word."""
        allowed = (*GLOBAL_WORDS, *(f"lang:{lang}" for lang in self.languages))
        if not set(entries) <= set(allowed):
            raise VocabularyError(f"{source}: global keys must be among {', '.join(allowed)}")
        found: dict[str, str] = {}
        for word, phrases in entries.items():
            for entry in strings(phrases, f"{source}: global.{word}"):
                for spelling in expand(entry):
                    # a phrase made only of request words ("thank you") is kept whole
                    key = self._without(spelling, self._fillers) or normalize(spelling)
                    if key and found.setdefault(key, word) != word:
                        raise VocabularyError(f"{source}: global.{word}: {spelling!r} is already {found[key]}")
        return found

    def _build_yes_no(self, entries: Mapping[str, Any], source: str) -> None:
        def phrases(key: str) -> frozenset[str]:
            entries_here = strings(entries.get(key), f"{source}: yes_no.{key}")
            return frozenset(normalize(spelling) for entry in entries_here for spelling in expand(entry))

        self._yes, self._no, self._unsure = phrases("yes"), phrases("no"), phrases("unsure")
        self._leading_yes, self._leading_no = phrases("leading_yes"), phrases("leading_no")

    @staticmethod
    def _without(text: str, drop: frozenset[str]) -> str:
        return " ".join(t for t in normalize(text).split() if t not in drop)

    # -- the contract -------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        return normalize(text)

    def category(self, text: str) -> str | None:
        """The need a message names: longest known phrases first, most matched words wins,
        a tie goes to the need named first. Numbers alone are not needs."""
        found = self.categories(text)
        return found[0] if found else None

    def categories(self, text: str) -> list[str]:
        """Every need a message names, the strongest first (most matched words; a tie goes to the
        need named first): "my son got shot and we need a lawyer" names violence and legal."""
        tokens = [self._speller.correct(t) for t in self._tokens(text)]
        scores: dict[str, int] = {}
        i = 0
        while i < len(tokens):
            for n in self._lengths.get(tokens[i], ()):
                found = self._phrases.get(tuple(tokens[i : i + n]))
                if found:
                    scores[found] = scores.get(found, 0) + n
                    i += n
                    break
            else:
                i += 1
        return sorted(scores, key=lambda c: -scores[c])  # sorted() is stable: ties keep the order named

    def global_word(self, text: str) -> str | None:
        """MENU, a language or a person, when that is the whole message (request words aside)."""
        key = self._without(text, self._fillers)
        found = self._global.get(key) if key else self._global.get(normalize(text))
        if found is None and key and " " not in key:
            found = self._global.get(self._global_speller.correct(key))
        return found

    def says(self, word: str) -> str | None:
        """The vocabulary's first phrase for a global word ("espanol" for lang:es)."""
        return next((phrase for phrase, found in self._global.items() if found == word), None)

    def unsure(self, text: str) -> bool:
        """ "idk", "not sure", "no sé": the resident does not know."""
        words = self._without(text, self._polite)
        return any(words == u or words.startswith(u + " ") for u in self._unsure)

    def yes_no(self, text: str) -> bool | None:
        emoji = _EMOJI_DECORATION.sub("", text)
        if emoji and set(emoji) <= _EMOJI_ANSWERS.keys() and len({_EMOJI_ANSWERS[c] for c in emoji}) == 1:
            return _EMOJI_ANSWERS[emoji[0]]
        words = self._without(text, self._polite)
        if not words or any(words == u or words.startswith(u + " ") for u in self._unsure):
            return None
        if words in self._yes:
            return True
        if words in self._no:
            return False
        first = words.split()[0]
        if first in self._leading_yes:
            return True
        if first in self._leading_no:
            return False
        return None

    def choice(self, text: str, options: Sequence[tuple[str, Sequence[str]]]) -> str | None:
        """The option a reply picks: its number ("2", "#2", "two", "la segunda"), its words,
        its category or yes/no value, or most of its words (typos allowed); None when unsure."""
        norm = normalize(text)
        if not norm or not options:
            return None
        position = self._position(norm)
        if position is not None:
            return options[position - 1][0] if 1 <= position <= len(options) else None
        values = [value for value, _ in options]
        for value, words in options:
            if norm in {normalize(w) for w in (value, *words)}:
                return value
        answer = self.yes_no(text) if {"yes", "no"} & set(values) else None
        if answer is not None and ("yes" if answer else "no") in values:
            return "yes" if answer else "no"
        category = self.category(text)
        if category in values:
            return category
        return self._by_words(norm, options)

    def named_option(self, text: str, options: Sequence[tuple[str, Sequence[str]]]) -> str | None:
        """The one option whose words (or phrases) a message uses, spelling corrected as for needs:
        "my tooth hurts" names teeth. None when it names no option or several."""
        said = f" {' '.join(self._speller.correct(t) for t in self._tokens(text))} "
        named = [
            value
            for value, words in options
            if any(f" {' '.join(self._tokens(spelling))} " in said for word in words for spelling in expand(word))
        ]
        return named[0] if len(named) == 1 else None

    def zip_code(self, text: str) -> str | None:
        """The first 5-digit ZIP in the text (ZIP+4 accepted); phone numbers are not ZIPs."""
        for match in _ZIP.finditer(text):
            if match.group(1) != "00000":
                return match.group(1)
        return None

    def number(self, text: str) -> int | None:
        """The first whole number, in digits ("1,200" is 1200) or spelled one to ten (en/es)."""
        for token in normalize(_THOUSANDS.sub("", text)).split():
            digits = _LEADING_DIGITS.match(token)
            if digits:
                return int(digits.group())
            if token in self._numbers:
                return self._numbers[token]
        return None

    def language(self, text: str) -> str | None:
        """The language with the most words only it uses; None on a tie ("ok", "64124")."""
        tokens = normalize(text).split()
        counts = {lang: sum(t in words for t in tokens) for lang, words in self._language_words.items()}
        best = max(counts.values(), default=0)
        leaders = [lang for lang, n in counts.items() if n == best]
        return leaders[0] if best and len(leaders) == 1 else None

    # -- helpers ------------------------------------------------------------------------

    def _position(self, norm: str) -> int | None:
        """The option number when the whole reply is one: "2", "#2", "option two", "the 2nd one"."""
        tokens = [t for t in norm.split() if t not in _PICK_NOISE and t not in self._polite]
        if len(tokens) == 2 and tokens[1] in _PRONOUN_ONE and tokens[0] in self._ordinals:
            tokens = tokens[:1]
        if len(tokens) != 1:
            return None
        token = tokens[0]
        digits = _ORDINAL_DIGITS.fullmatch(token)
        if digits:
            return int(digits.group(1))
        return self._numbers.get(token) or self._ordinals.get(token)

    def _by_words(self, norm: str, options: Sequence[tuple[str, Sequence[str]]]) -> str | None:
        """The option whose words cover most of the reply's words (at least half, no tie)."""
        noise = self._fillers | self._skip | _CHOICE_NOISE
        tokens = [t for t in norm.split() if t not in noise]
        if not tokens:
            return None
        scores = []
        for value, words in options:
            vocabulary = {t for w in (value, *words) for t in normalize(w).split()} - noise
            scores.append(sum(_covered(t, vocabulary) for t in tokens) / len(tokens))
        best = max(scores)
        if best < 0.5 or scores.count(best) > 1:
            return None
        return options[scores.index(best)][0]


def _covered(token: str, vocabulary: set[str]) -> bool:
    """The token is one of the words, or close to one (a typo)."""
    if token in vocabulary:
        return True
    return (
        len(token) >= 3
        and bool(vocabulary)
        and process.extractOne(token, vocabulary, scorer=fuzz.ratio, score_cutoff=80) is not None
    )


def _lengths_by_first_word(phrases: Iterable[tuple[str, ...]]) -> dict[str, tuple[int, ...]]:
    """For each word that starts a phrase, the lengths of those phrases, longest first."""
    lengths: dict[str, set[int]] = {}
    for phrase in phrases:
        lengths.setdefault(phrase[0], set()).add(len(phrase))
    return {word: tuple(sorted(found, reverse=True)) for word, found in lengths.items()}


def _words(entries: Iterable[str]) -> set[str]:
    return {w for entry in entries for w in normalize(entry).split()}


def _number_words(entries: Mapping[Any, Any], where: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for number, spelled in entries.items():
        if not isinstance(number, int):
            raise VocabularyError(f"{where}: keys must be whole numbers, not {number!r}")
        for word in strings(spelled, f"{where}.{number}"):
            found[normalize(word)] = number
    return found


def _language_words(common: Mapping[str, set[str]], category: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    """Each language's everyday and need words, minus those another language also uses (and numbers:
    "3" belongs to no language)."""
    words = {lang: {w for w in common[lang] | category[lang] if not w.isdigit()} for lang in common}
    return {
        lang: frozenset(own - set().union(*(other for name, other in words.items() if name != lang)))
        for lang, own in words.items()
    }
