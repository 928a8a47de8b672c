"""The low findings of issue 10, each replayed: a number in a provider's error text, world-readable
files, a production start without PUBLIC_BASE_URL (signatures checked against a Host the client
chose), and cookies without Secure (and no HSTS) behind a TLS proxy."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest
from conftest import RESIDENT, ROOT, Phone
from fault_twilio import ACCOUNT_SID, ScriptedTwilio
from sqlalchemy import select, text

from bot import create_app
from bot.config import ConfigError, load_settings
from bot.messaging.outbound import TwilioSender
from bot.storage.db import Database
from bot.storage.migrate import upgrade
from bot.storage.models import Message

TWILIO_SAYS = "The 'To' number +1 (816) 555-0123 is not a valid phone number. Also tried 18165550123."


# -- a provider's error text ---------------------------------------------------------------------------


def test_a_provider_error_text_is_stored_without_the_number(env, clock):
    settings = load_settings({**env, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": "+18165550100"})
    http = ScriptedTwilio((400, {"code": 21211, "message": TWILIO_SAYS, "status": 400, "more_info": ""}))
    app = create_app(settings, clock=clock, sender=TwilioSender(settings, http_client=http, sleep=lambda _s: None))
    rt = app.extensions["peaceline"]
    try:
        Phone(app.test_client()).text("hi")
        with rt.db.sessions() as s:
            resident_id = s.scalars(select(Message.resident_id)).first()
        msg = rt.outbound.send(resident_id, "Hi, this is Ana.", "caseworker")
        assert http.sent_to == [RESIDENT] and msg.status == "failed" and msg.error_code == 21211
        with rt.db.engine.connect() as conn:
            stored = conn.execute(text("SELECT error_message FROM messages WHERE error_code = 21211")).scalar_one()
        assert stored.endswith("The 'To' number [number] is not a valid phone number. Also tried [number].")
        assert msg.error_message == stored
    finally:
        rt.db.dispose()


# -- files on disk -----------------------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    """The common default: files 0644 and folders 0755 unless created otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_instance_folder_secret_and_database_files_are_owner_only(tmp_path, umask_022):
    instance = tmp_path / "instance"
    settings = load_settings({}, instance_path=instance)
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.engine.connect() as conn:  # WAL: the -wal and -shm files appear beside the database
            conn.execute(text("SELECT count(*) FROM residents"))
            files = sorted(p.name for p in instance.iterdir())
            assert files == ["peaceline.db", "peaceline.db-shm", "peaceline.db-wal", "secret_key"]
            assert {name: mode(instance / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(instance) == 0o700
    finally:
        db.dispose()


def test_a_database_folder_of_its_own_is_made_owner_only_too(tmp_path, umask_022):
    url = f"sqlite:///{tmp_path / 'data' / 'line.db'}"
    upgrade(url)
    assert (mode(tmp_path / "data"), mode(tmp_path / "data" / "line.db")) == (0o700, 0o600)


# -- PEACELINE_ENV and PUBLIC_BASE_URL -----------------------------------------------------------------------


def test_production_refuses_to_start_without_public_base_url(env, clock, verified_resources):
    env = {**env, "RESOURCES_PATH": str(verified_resources)}
    settings = load_settings({**env, "PEACELINE_ENV": "production", "PUBLIC_BASE_URL": ""})
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be set when PEACELINE_ENV=production"):
        create_app(settings, clock=clock)
    app = create_app(load_settings({**env, "PEACELINE_ENV": "production"}), clock=clock)  # with it: fine
    app.extensions["peaceline"].db.dispose()


def test_development_starts_without_public_base_url_and_says_what_it_risks(env, clock, caplog):
    with caplog.at_level(logging.WARNING, logger="peaceline"):
        app = create_app(load_settings({**env, "PUBLIC_BASE_URL": ""}), clock=clock)
    app.extensions["peaceline"].db.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("PUBLIC_BASE_URL is not set" in w and "Host" in w for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="peaceline"):
        create_app(load_settings(env), clock=clock).extensions["peaceline"].db.dispose()
    assert not [r for r in caplog.records if "PUBLIC_BASE_URL" in r.getMessage()]


def test_peaceline_env_must_be_a_known_one(env):
    with pytest.raises(ConfigError, match="PEACELINE_ENV must be development or production"):
        load_settings({**env, "PEACELINE_ENV": "staging"})


def clean_env(tmp_path, **settings: str) -> dict[str, str]:
    run_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO", "DATABASE", "PORT", "PUBLIC_BASE_URL", "PEACELINE"))
    }
    return {**run_env, "PEACELINE_INSTANCE": str(tmp_path), **settings}


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-c", "import wsgi"], [sys.executable, "-m", "bot", "serve"]],
    ids=["gunicorn wsgi:app", "peaceline serve"],
)
def test_both_ways_to_start_in_production_stop_with_one_line(tmp_path, command):
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=clean_env(tmp_path, PEACELINE_ENV="production"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PUBLIC_BASE_URL must be set" in lines[0], proc.stderr


# -- Secure cookies and HSTS over HTTPS ---------------------------------------------------------------------


def cookie_and_hsts(app, **headers: str) -> tuple[str, str | None]:
    resp = app.test_client().get("/login", headers=headers)  # the login form's CSRF token sets the cookie
    return resp.headers["Set-Cookie"], resp.headers.get("Strict-Transport-Security")


@pytest.fixture
def make_app(env, clock):
    apps = []

    def make(**overrides: str):
        app = create_app(load_settings({**env, **overrides}), clock=clock)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["peaceline"].db.dispose()


def test_behind_a_trusted_tls_proxy_cookies_are_secure_and_hsts_is_sent(make_app):
    app = make_app(PUBLIC_BASE_URL="", TRUSTED_PROXIES="1")
    cookie, hsts = cookie_and_hsts(app, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie and hsts == "max-age=31536000"
    cookie, hsts = cookie_and_hsts(app)  # the same proxy, plain http
    assert "Secure" not in cookie and hsts is None


def test_a_client_cannot_claim_https_without_a_trusted_proxy(make_app):
    cookie, hsts = cookie_and_hsts(make_app(PUBLIC_BASE_URL="", TRUSTED_PROXIES="0"), **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in cookie and hsts is None


def test_an_https_public_base_url_means_secure_cookies_and_hsts(make_app):
    cookie, hsts = cookie_and_hsts(make_app(PUBLIC_BASE_URL="https://line.example.org"))
    assert "Secure" in cookie and hsts == "max-age=31536000"
