"""`peaceline init DIR`: a folder of the operator's own, from the packaged defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.config import FLOWS, PACKAGE, RESOURCES, packaged

TEMPLATES = PACKAGE / "operator"
ENV_EXAMPLE, README = ".env.example", "README.md"


class FolderExists(Exception):
    """The folder already holds something `init` would overwrite."""


def write_operator_folder(folder: Path) -> list[Path]:
    """Copy the default flows and resources, an .env example and a README into `folder` (made if
    missing); refuse, writing nothing, when any of them is already there."""
    targets = [folder / FLOWS, folder / RESOURCES, folder / ENV_EXAMPLE, folder / README]
    present = [str(path) for path in targets if path.exists()]
    if present:
        raise FolderExists(f"already there, not overwritten: {', '.join(present)}")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(packaged(FLOWS), folder / FLOWS, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(packaged(RESOURCES), folder / RESOURCES)
    shutil.copy2(TEMPLATES / "env.example", folder / ENV_EXAMPLE)
    shutil.copy2(TEMPLATES / "README.md", folder / README)
    return targets
