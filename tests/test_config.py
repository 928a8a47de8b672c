"""Configuration: defaults that run with nothing set; one clear line for each mistake."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.config import ConfigError, load_settings, parse_office_hours, parse_send_window, port_from


def test_no_configuration_at_all_gives_sqlite_in_instance_and_a_kept_secret(tmp_path):
    settings = load_settings({}, instance_path=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'peaceline.db'}"
    assert settings.sender_name == "log"
    assert len(settings.secret_key) >= 32
    assert load_settings({}, instance_path=tmp_path).secret_key == settings.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert (settings.allowed_countries, settings.environment) == ({"US"}, "development")


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"RESOURCES_PATH": "/nonexistent/resources.yaml"}, "RESOURCES_PATH"),
        ({"FLOWS_DIR": "/nonexistent"}, "FLOWS_DIR"),
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_FROM_NUMBER"),
        ({"SEND_WINDOW": "07:00-20:00"}, "SEND_WINDOW"),
        ({"SEND_WINDOW": "soon"}, "SEND_WINDOW"),
        ({"OFFICE_HOURS": "weekdays"}, "OFFICE_HOURS"),
        ({"PROGRAM_TIMEZONE": "Mars/Olympus"}, "PROGRAM_TIMEZONE"),
        ({"SESSION_IDLE_HOURS": "a day"}, "SESSION_IDLE_HOURS"),
        ({"SERVICE_AREA_MILES": "far"}, "SERVICE_AREA_MILES"),
        ({"SERVICE_AREA_MILES": "0"}, "SERVICE_AREA_MILES"),
        ({"ESCALATION_PHONES": "+1816555012"}, "ESCALATION_PHONES"),
        ({"PUBLIC_BASE_URL": "peaceline.org"}, "PUBLIC_BASE_URL"),
        ({"ALLOWED_COUNTRIES": "USA"}, "ALLOWED_COUNTRIES"),
        ({"ALLOWED_COUNTRIES": " , "}, "ALLOWED_COUNTRIES"),
        ({"PEACELINE_ENV": "prod"}, "PEACELINE_ENV"),
    ],
)
def test_each_mistake_names_its_setting(tmp_path, env, setting):
    with pytest.raises(ConfigError, match=setting):
        load_settings(env, instance_path=tmp_path)


def test_port_must_be_a_number():
    assert port_from(None) == 8000 and port_from("8080") == 8080
    for bad in ("http", "0", "70000", "-1"):
        with pytest.raises(ConfigError, match="PORT"):
            port_from(bad)


def test_windows_and_office_hours_parse():
    from datetime import time

    assert parse_send_window("09:00-20:00") == (time(9), time(20))
    hours = parse_office_hours("Mon-Fri 09:00-17:00")
    assert hours.is_open(0, time(9)) and not hours.is_open(5, time(10)) and not hours.is_open(4, time(17))
    assert parse_office_hours("Sat,Sun 10:00-14:00").days == {5, 6}


@pytest.mark.parametrize(
    "env, words",
    [
        ({"PORT": "http"}, "PORT"),
        ({"DATABASE_URL": "::nonsense::"}, "DATABASE_URL"),
        ({"RESOURCES_PATH": "/nonexistent.yaml"}, "RESOURCES_PATH"),
        ({"TWILIO_ACCOUNT_SID": "AC1"}, "TWILIO_AUTH_TOKEN"),
    ],
)
def test_serve_stops_with_one_clear_line_not_a_traceback(tmp_path, env, words):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO", "DATABASE", "PORT"))}
    run_env.update(env, PEACELINE_INSTANCE=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "serve"], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
