"""Immediate danger in a message (English or Spanish), checked before anything else.

The phrases live in the flows folder's vocabulary.yaml under `crisis:`; `Runtime` compiles them once
(bot/conversation/vocabulary.py) and hands the detector to the engine and the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.conversation.matching import (
    Speller,
    VocabularyError,
    languages_of,
    load_vocabulary,
    normalize,
    section,
    strings,
    strip_accents,
)


class CrisisKind(StrEnum):
    SELF_HARM = "self_harm"
    VIOLENCE = "violence"
    ABUSE = "abuse"
    OVERDOSE = "overdose"


# When a message matches several kinds, the first kind here answers it. Every crisis
# answer gives 911, so the order only picks the most specific extra help:
# - OVERDOSE: something is already taken and minutes count (911, naloxone): "I took all my
#   pills, I want to die" is an overdose first. Wanting to overdose is an intention, so
#   the vocabulary's `unless` list leaves it to SELF_HARM.
# - SELF_HARM: 988.
# - ABUSE: harm from a partner or family member; the DV hotline adds safety planning to
#   911: "my boyfriend has a gun and says he'll kill me" is ABUSE.
# - VIOLENCE: anyone else, weapons, shootings: 911 ("he has a gun and says he'll kill me").
PRIORITY = (CrisisKind.OVERDOSE, CrisisKind.SELF_HARM, CrisisKind.ABUSE, CrisisKind.VIOLENCE)

_GAP = r"(?: \w+){0,3} "  # the "..." of a pattern: up to three words in between
_SET = re.compile(r"\{([a-z_]\w*)\}")  # {partner}, not a repeat count like {2}
_ESCAPE_OR_TEXT = re.compile(r"\\.|[^\\]+")
_CAPTURING = re.compile(r"(?<!\\)\((?!\?)")
_CUT = " |"  # stands in for suppressed text; no pattern matches across it


class CrisisDetector:
    """Compiled crisis patterns: a few regular-expression searches per message."""

    def __init__(self, vocabulary: Mapping[str, Any], source: str = "vocabulary") -> None:
        crisis = section(vocabulary, "crisis", source)
        languages = languages_of(vocabulary, source)
        where = f"{source}: crisis"
        sets = {
            name: _alternatives(entries, f"{where}.sets.{name}")
            for name, entries in section(crisis, "sets", where).items()
        }
        self._not_crisis = _compile(
            strings(crisis.get("not_crisis"), f"{where}.not_crisis"), sets, f"{where}.not_crisis"
        )
        self._rules = [
            self._rule(kind, section(crisis, kind.value, where), sets, f"{where}.{kind}", languages)
            for kind in PRIORITY
        ]
        common = section(vocabulary, "common", source)
        known = {w for lang in languages for w in _words(common.get(lang), f"{source}: common.{lang}")}
        known |= _words(vocabulary.get("protected"), f"{source}: protected")
        self._speller = Speller(_words(crisis.get("fuzzy"), f"{where}.fuzzy"), known, min_length=5)

    @staticmethod
    def _rule(
        kind: CrisisKind, rules: Mapping[str, Any], sets: Mapping[str, str], where: str, languages: tuple[str, ...]
    ) -> tuple[CrisisKind, re.Pattern[str], re.Pattern[str] | None]:
        """A kind's patterns in every language, and the patterns that rule it out."""
        pattern = _compile([p for lang in languages for p in strings(rules.get(lang), f"{where}.{lang}")], sets, where)
        if pattern is None:
            raise VocabularyError(f"{where}: no patterns")
        return kind, pattern, _compile(strings(rules.get("unless"), f"{where}.unless"), sets, f"{where}.unless")

    @classmethod
    def from_file(cls, path: Path) -> CrisisDetector:
        return cls(load_vocabulary(path), str(path))

    def detect(self, text: str) -> CrisisKind | None:
        """The kind of immediate danger a message reads as, or None."""
        words = normalize(text).split()
        if not words:
            return None
        # Padded with spaces: every pattern starts with one, so the regex engine only tries word starts.
        norm = " " + " ".join(self._speller.correct(w) for w in words) + " "
        if self._not_crisis is not None:
            norm = self._not_crisis.sub(_CUT, norm)
        for kind, pattern, unless in self._rules:
            scoped = unless.sub(_CUT, norm) if unless is not None else norm
            if pattern.search(scoped):
                return kind
        return None


def _alternatives(entries: Any, where: str) -> str:
    """A word set as a regex group, longest words first."""
    return "(?:" + "|".join(sorted(_words(entries, where), key=len, reverse=True)) + ")"


def _words(entries: Any, where: str) -> set[str]:
    return {normalize(entry) for entry in strings(entries, where)} - {""}


def _compile(patterns: Sequence[str], sets: Mapping[str, str], where: str) -> re.Pattern[str] | None:
    """One alternation of whole-word patterns, with {sets} and "..." filled in."""
    parts = []
    for pattern in patterns:

        def fill(match: re.Match[str], pattern: str = pattern) -> str:
            if match.group(1) not in sets:
                raise VocabularyError(f"{where}: {pattern!r}: no word set named {match.group(1)!r}")
            return sets[match.group(1)]

        source = _SET.sub(fill, _lower(strip_accents(pattern))).replace(" ... ", _GAP)
        source = _CAPTURING.sub("(?:", source)  # nothing reads the groups; plain ones are slower
        try:
            re.compile(source)
        except re.error as exc:
            raise VocabularyError(f"{where}: {pattern!r}: {exc}") from None
        parts.append(source)
    if not parts:
        return None
    # Lower case rather than re.IGNORECASE, and a leading space rather than a lookbehind: both
    # make the search several times faster (the engine skips to spaces and compares plain bytes).
    return re.compile(r" (?:" + "|".join(parts) + r")(?= )")


def _lower(pattern: str) -> str:
    """The pattern in lower case, its escapes (\\W, \\S) untouched."""
    return _ESCAPE_OR_TEXT.sub(lambda m: m.group() if m.group().startswith("\\") else m.group().lower(), pattern)
