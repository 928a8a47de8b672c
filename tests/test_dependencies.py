"""Dependencies: floors past known advisories, and lock files with hashes that CI installs from.

No network: the lock files are read as text and checked against pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from conftest import ROOT
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCKS = {"runtime": ROOT / "requirements.txt", "test": ROOT / "requirements-test.txt"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")
# Versions with published advisories: each must be outside our floors, and never locked.
ADVISORIES = {
    "gunicorn": ["22.0.0"],  # CVE-2024-6827 (request smuggling)
    "cryptography": ["42.0.0", "42.0.3", "43.0.0", "44.0.0"],  # CVE-2024-26130; OpenSSL in the wheels
    "flask": ["3.1.0"],  # CVE-2025-47278
    "werkzeug": ["3.0.2", "3.0.5", "3.1.3"],  # CVE-2024-34069, CVE-2024-49767, CVE-2025-66221
    "jinja2": ["3.1.2", "3.1.4", "3.1.5"],  # sandbox escapes, CVE-2025-27516
    "requests": ["2.31.0", "2.32.3"],  # CVE-2024-35195, CVE-2024-47081
    "setuptools": ["68.0.0", "70.0.0", "78.1.0"],  # CVE-2024-6345, CVE-2025-47273
}


def locked(kind: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) for the entries that apply to Python 3.11 on Linux."""
    env = {
        **default_environment(),
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "implementation_name": "cpython",
    }
    out: dict[str, tuple[Version, int]] = {}
    lines = LOCKS[kind].read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        if marker and not Requirement(f"x; {marker}").marker.evaluate(env):
            continue
        hashes = 0
        for following in lines[i + 1 :]:
            if not following.startswith("    --hash=sha256:"):
                break
            hashes += 1
        out[canonicalize_name(name)] = (Version(version), hashes)
    return out


def requirements(kind: str) -> list[Requirement]:
    runtime = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    return (
        runtime
        if kind == "runtime"
        else runtime + [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
    )


@pytest.mark.parametrize("kind", LOCKS)
def test_every_dependency_is_locked_with_hashes_inside_our_ranges(kind):
    pins = locked(kind)
    assert pins and all(hashes >= 1 for _, hashes in pins.values()), "every locked package carries its hashes"
    for req in requirements(kind):
        version, _ = pins[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), f"{req.name} {version} is outside {req.specifier}"
    assert "peaceline" not in pins, "the project itself is installed from the tree, not the lock"


def test_the_test_lock_pins_the_runtime_the_same_way():
    runtime, test = locked("runtime"), locked("test")
    assert {name: runtime[name][0] for name in runtime} == {name: test[name][0] for name in runtime}


def all_floors() -> dict[str, Requirement]:
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    return {canonicalize_name(r.name): r for r in [*requirements("test"), *build]}


@pytest.mark.parametrize("package", ADVISORIES)
def test_versions_with_known_advisories_are_refused(package):
    """The replay: the old floors admitted gunicorn 22.0.0 and cryptography 42.0.0 to 42.0.3."""
    floor = all_floors()[package]
    for bad in ADVISORIES[package]:
        assert not floor.specifier.contains(bad), f"{package} {bad} is still allowed by {floor}"
    pins = locked("test")
    if package in pins:
        assert str(pins[package][0]) not in ADVISORIES[package]


def test_ci_installs_the_lock_with_hashes_before_the_project():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lock = script.index("pip install -q --require-hashes -r requirements-test.txt")
    assert lock < script.index("pip install -q --no-deps -e '.[test]'")
    assert 'if [ "$rc" -eq 5 ]' in script, "a run that collects no test fails"


def test_the_readme_installs_production_from_the_lock_and_keeps_the_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install --require-hashes -r requirements.txt" in readme
    assert "pip install -e '.[test]'" in readme
