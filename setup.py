"""The one build step pyproject.toml cannot say: the wheel carries the top-level flows/ and
resources.yaml as bot/defaults/ (an editable install reads them from the source tree instead)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent
DEFAULTS = ("flows", "resources.yaml")


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "bot" / "defaults"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in DEFAULTS:
            source = SOURCE / name
            if source.is_dir():
                shutil.copytree(source, target / name)
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithDefaults})
