"""Go-live checks: `peaceline check --strict`, the serve banner, and production refusing sample data."""

from __future__ import annotations

import logging
import re

import pytest
from click.testing import CliRunner

from bot import create_app
from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.directory.resources import load_directory
from bot.golive import Check, Staff, config_warnings, staffing_warning
from bot.server import banner

EVERY_CHECK = [c.value for c in Check]
READY = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_FROM_NUMBER": "+18164710100",
    "ESCALATION_PHONES": "+18164710199",
}
PASSWORD = "a long password for the test\n"


def run(env: dict[str, str], *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def add_caseworker(env: dict[str, str], email: str, *extra: str) -> None:
    result = run(env, "create-caseworker", "--email", email, "--name", "Maria", *extra, stdin=PASSWORD)
    assert result.exit_code == 0, result.output


def test_strict_check_on_the_shipped_sample_data_fails_naming_every_warning(env):
    bare = {**env, "PUBLIC_BASE_URL": "", "TWILIO_AUTH_TOKEN": ""}
    result = run(bare, "check", "--strict")
    assert result.exit_code == 1, result.output
    named = re.findall(r"^go-live: warning: (\w+): ", result.output, re.M)
    assert sorted(named) == sorted(EVERY_CHECK)
    assert "kc-tenants-hotline: +18165550103" in result.output  # the number that went out to residents
    assert "6 of them go-live" in result.output
    assert run(bare, "check").exit_code == 0, "without --strict they stay warnings"


def test_strict_check_passes_once_the_program_is_ready(env, verified_resources):
    ready = {**env, **READY, "RESOURCES_PATH": str(verified_resources)}
    add_caseworker(ready, "maria@example.org", "--phone", "+18164710123")
    result = run(ready, "check", "--strict")
    assert result.exit_code == 0, result.output
    assert "go-live" not in result.output.replace("0 of them go-live", "")


def test_a_gap_in_duty_hours_is_named(env, verified_resources):
    ready = {**env, **READY, "RESOURCES_PATH": str(verified_resources)}
    add_caseworker(ready, "maria@example.org", "--phone", "+18164710123", "--duty-hours", "Mon-Wed 09:00-17:00")
    add_caseworker(ready, "ana@example.org", "--duty-hours", "Thu-Fri 09:00-17:00")  # no phone: no notice
    result = run(ready, "check", "--strict")
    assert result.exit_code == 1
    assert "no_staff_on_duty: no caseworker with a phone is on duty Thu 09:00" in result.output


def test_staffing_covers_every_slot_of_the_office_hours():
    settings = load_settings({"PEACELINE_INSTANCE": "/tmp/unused", "SECRET_KEY": "x"})
    morning, afternoon = Staff("+18164710123", "Mon-Fri 09:00-13:00"), Staff("+18164710124", "Mon-Fri 13:00-17:00")
    assert staffing_warning(settings, [morning, afternoon]) is None
    gap = staffing_warning(settings, [morning, Staff("+18164710124", "Mon-Fri 13:30-17:00")])
    assert gap is not None and "Mon 13:00" in gap.text
    assert staffing_warning(settings, [Staff(None, None)]) is not None


def test_production_refuses_sample_data_and_placeholders_in_one_line(env, clock):
    settings = load_settings({**env, "PEACELINE_ENV": "production"})
    with pytest.raises(ConfigError) as refused:
        create_app(settings, clock=clock)
    line = str(refused.value)
    assert "\n" not in line and "sample_data: true" in line and "placeholder number(s)" in line
    assert "PUBLIC_BASE_URL" not in line  # it is set: only what is wrong is named


def test_production_starts_on_a_verified_directory_with_the_rest_as_warnings(env, clock, verified_resources, caplog):
    settings = load_settings({**env, "PEACELINE_ENV": "production", "RESOURCES_PATH": str(verified_resources)})
    with caplog.at_level(logging.WARNING, logger="peaceline"):
        create_app(settings, clock=clock).extensions["peaceline"].db.dispose()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "no_escalation_phones" in warned and "no_twilio" in warned and "sample_data" not in warned


def test_development_starts_on_sample_data_and_logs_each_warning(env, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="peaceline"):
        create_app(load_settings(env), clock=clock).extensions["peaceline"].db.dispose()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "sample_data" in warned and "placeholder_numbers" in warned


def test_the_serve_banner_repeats_the_warnings(settings):
    warnings = config_warnings(settings, load_directory(settings.resources_path))
    text = banner(settings, "127.0.0.1", 8000, 2, True, warnings)
    assert "not ready to go live" in text
    for warning in warnings:
        assert f"{warning.check}: {warning.text}" in text
