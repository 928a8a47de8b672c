"""One operator's vocabulary: the matcher and the crisis detector, built together from one file.

Nothing reads a vocabulary at import: `Runtime` builds this once from the configured FLOWS_DIR and
hands it to the engine and the service, so a crisis phrase an operator adds is heard everywhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bot.conversation.crisis import CrisisDetector
from bot.conversation.matching import VOCABULARY_FILE, Matcher, VocabularyError, load_vocabulary


@dataclass(frozen=True)
class Vocabulary:
    matcher: Matcher
    crisis: CrisisDetector

    @classmethod
    def from_flows(cls, flows_dir: Path, needs: Collection[str] | None = None) -> Vocabulary:
        """Read `flows_dir`/vocabulary.yaml once; raise VocabularyError naming the file and key. With
        `needs` (the directory's categories), its categories must be exactly those."""
        path = flows_dir / VOCABULARY_FILE
        data = load_vocabulary(path)
        matcher = Matcher(data, str(path))
        if needs is not None and set(matcher.needs) != set(needs):
            raise VocabularyError(f"{path}: categories must be exactly the directory's: {', '.join(needs)}")
        return cls(matcher, CrisisDetector(data, str(path)))
