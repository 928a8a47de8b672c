"""Freshness: `peaceline check` warns about services not verified within RESOURCE_MAX_AGE_DAYS (the exit
code stays), and the reports page lists them for the program lead."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.casework.reports import stale_services
from bot.cli import main
from bot.config import load_settings
from bot.directory.resources import load_directory

TODAY = date(2026, 12, 1)  # the day of conftest's T0 in Kansas City


def entry(service_id: str, verified: date | None) -> dict:
    return {
        "id": service_id,
        "name": service_id.replace("-", " ").title(),
        "description": "Helps.",
        "status": "active",
        "organization": {"name": f"{service_id.split('-')[0].title()} Org"},
        "categories": ["food"],
        "phones": [{"number": "+18164746750"}],
        **({"assured_date": verified.isoformat()} if verified else {}),
    }


def write_directory(folder: Path, verified: dict[str, date | None]) -> Path:
    """A resources.yaml with the shipped categories and one service per (id, last verified) pair."""
    categories = yaml.safe_load((ROOT / "resources.yaml").read_text(encoding="utf-8"))["categories"]
    path = folder / "resources.yaml"
    document = {
        "spec_version": "3.0",
        "categories": categories,
        "services": [entry(i, day) for i, day in verified.items()],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_stale_services_are_older_than_the_limit_oldest_first(tmp_path):
    directory = load_directory(
        write_directory(
            tmp_path,
            {
                "fresh-pantry": TODAY - timedelta(days=10),
                "edge-clinic": TODAY - timedelta(days=180),
                "old-clinic": TODAY - timedelta(days=181),
                "oldest-shelter": TODAY - timedelta(days=400),
            },
        )
    )
    stale = stale_services(directory, TODAY, 180)
    assert [(s.id, s.name, s.organization, s.days_old) for s in stale] == [
        ("oldest-shelter", "Oldest Shelter", "Oldest Org", 400),
        ("old-clinic", "Old Clinic", "Old Org", 181),
    ]
    assert stale[0].verified == TODAY - timedelta(days=400)


# -- peaceline check -----------------------------------------------------------------------------


def check(env: dict[str, str], resources: Path, **extra: str):
    return CliRunner().invoke(main, ["check"], env={**env, "RESOURCES_PATH": str(resources), **extra})


def test_check_warns_about_stale_services_without_failing(env, tmp_path):
    today = date.today()  # `check` reads the real clock; these margins make the day's time zone moot
    resources = write_directory(
        tmp_path, {"fresh-pantry": today - timedelta(days=10), "old-clinic": today - timedelta(days=400)}
    )
    quiet = check(env, resources, RESOURCE_MAX_AGE_DAYS="1000")
    loud = check(env, resources)
    assert quiet.exit_code == loud.exit_code == 0, loud.output
    assert "old-clinic" not in quiet.output
    assert f"{resources}: warning: service 'old-clinic': last verified {today - timedelta(days=400)}" in loud.output
    assert "RESOURCE_MAX_AGE_DAYS is 180" in loud.output and "fresh-pantry" not in loud.output
    warnings = [int(out.output.split(" error(s), ")[1].split(" ")[0]) for out in (quiet, loud)]
    assert warnings[1] == warnings[0] + 1


def test_check_warns_about_a_service_never_verified(env, tmp_path):
    resources = write_directory(tmp_path, {"fresh-pantry": date.today(), "new-clinic": None})
    result = check(env, resources)
    assert result.exit_code == 0, result.output
    assert f"{resources}: warning: service 'new-clinic': never verified (no assured_date)" in result.output
    assert stale_services(load_directory(resources), TODAY, 180)[0].id == "new-clinic"


def test_stale_services_do_not_hide_an_error(env, tmp_path):
    resources = write_directory(tmp_path, {"old-clinic": date.today() - timedelta(days=400)})
    broken = yaml.safe_load(resources.read_text(encoding="utf-8"))
    broken["services"][0]["categories"].append("pets")
    resources.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = check(env, resources)
    assert result.exit_code == 1 and "unknown category 'pets'" in result.output


# -- the reports page ------------------------------------------------------------------------------


@pytest.fixture
def env(env, tmp_path):
    """The conftest environment, with a directory of known verification dates."""
    (tmp_path / "page").mkdir()
    env["RESOURCES_PATH"] = str(
        write_directory(
            tmp_path / "page",
            {"fresh-pantry": date(2026, 11, 20), "old-clinic": date(2026, 5, 1), "oldest-shelter": date(2025, 11, 20)},
        )
    )
    return env


def login(client, rt) -> None:
    add_caseworker(rt, email="lead@example.org", name="Program Lead")
    assert Staff(client).login("lead@example.org").status_code == 302


def test_reports_page_lists_services_to_verify_again(client, rt):
    login(client, rt)
    html = client.get("/reports").get_data(as_text=True)
    section = html.split('id="stale"')[1]
    assert "Resources to verify again" in section and "more than 180 days ago" in section
    assert section.index("Oldest Shelter") < section.index("Old Clinic"), "oldest first"
    assert "<td>Oldest Org</td><td>November 20, 2025</td><td>376</td>" in section
    assert "<td>Old Org</td><td>May 1, 2026</td><td>214</td>" in section
    assert "Fresh Pantry" not in html


def test_reports_page_says_when_every_service_is_fresh(env, clock):
    app = create_app(load_settings({**env, "RESOURCE_MAX_AGE_DAYS": "1000"}), clock=clock)
    app.config["TESTING"] = True
    rt = app.extensions["peaceline"]
    try:
        client = app.test_client()
        login(client, rt)
        html = client.get("/reports").get_data(as_text=True)
    finally:
        rt.db.dispose()
    assert "Every service was verified in the last 1000 days." in html and "Oldest Shelter" not in html
