"""Fixtures: a migrated database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the app, signed texts."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.clock import FrozenClock
from bot.config import load_settings
from bot.messaging.outbound import SendResult
from bot.storage import crypto
from bot.storage.db import scratch_database
from bot.storage.migrate import upgrade
from bot.storage.models import Base

ROOT = Path(__file__).resolve().parents[1]  # the source tree: flows/, resources.yaml, shared/ beside it
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
BASE_URL = "https://peaceline.example.org"
PROGRAM_NUMBER = "+18165550100"
RESIDENT = "+18165550123"
# Tuesday 1 Dec 2026, 10:00 in Kansas City: inside office hours and the sending window.
T0 = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
SHARED = ROOT.parent / "shared"


# -- the database -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory):
    """Migrate once per test session; each test gets a fresh copy (SQLite) or empty tables (PostgreSQL)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        template = tmp_path_factory.mktemp("db") / "template.db"
        upgrade(f"sqlite:///{template}")
        yield ("sqlite", template)
        return
    with scratch_database(url, "peaceline_t") as test_url:
        upgrade(test_url)
        yield ("postgresql", test_url)


@pytest.fixture
def database_url(_migrated, tmp_path) -> str:
    kind, where = _migrated
    if kind == "sqlite":
        path = tmp_path / "peaceline.db"
        shutil.copy(where, path)
        return f"sqlite:///{path}"
    engine = create_engine(where)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return where


@pytest.fixture
def is_postgres(_migrated) -> bool:
    return _migrated[0] == "postgresql"


# -- the app ----------------------------------------------------------------------------------


@pytest.fixture
def data_key() -> str | None:
    """DATA_KEY for the app (none: no encryption at rest); a test module may override it."""
    return None


@pytest.fixture
def env(database_url, tmp_path, data_key) -> dict[str, str]:
    """The environment the app is configured from; tests may change it before `app` is built."""
    env = {
        "DATABASE_URL": database_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": BASE_URL,
        "SECRET_KEY": "test-secret-key",
        "PEACELINE_INSTANCE": str(tmp_path / "instance"),
    }
    return {**env, "DATA_KEY": data_key} if data_key else env


@pytest.fixture(autouse=True)
def no_cipher_left_behind():
    """The DATA_KEY cipher is process state (set by every app built): leave none for the next test."""
    yield
    crypto.configure(None)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def verified_resources(tmp_path) -> Path:
    """The shipped directory once an operator has called every place: real numbers, sample_data false."""
    text = (ROOT / "resources.yaml").read_text()
    text = re.sub(r"\+1816555(01\d\d)", r"+1816471\1", text).replace("PLACEHOLDER number", "main line")
    path = tmp_path / "resources.yaml"
    path.write_text(text.replace("sample_data: true", "sample_data: false"))
    return path


@pytest.fixture
def settings(env):
    return load_settings(env)


class Outbox:
    """A sender that keeps what it was asked to send; numbers in `broken` make it raise."""

    name = "test"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.broken: set[str] = set()

    def send(self, to: str, body: str, status_callback: str | None) -> SendResult:
        if to in self.broken:
            raise RuntimeError("the SMS API is down")
        self.sent.append((to, body))
        return SendResult("queued", sid=f"SM{len(self.sent):032d}")

    def to(self, number: str) -> list[str]:
        return [body for to, body in self.sent if to == number]


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def sender():
    """The app's sender: None for the configured one (the log sender); override with `outbox`."""
    return None


@pytest.fixture
def app(settings, clock, sender):
    app = create_app(settings, clock=clock, sender=sender)
    app.config["TESTING"] = True
    yield app
    app.extensions["peaceline"].db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def rt(app):
    """The app's runtime (database, service, outbound, clock)."""
    return app.extensions["peaceline"]


# -- signed Twilio webhooks ---------------------------------------------------------------

_sids = itertools.count(1)


def new_sid(prefix: str = "SM") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class Phone:
    """A resident's phone texting the program through the real, signed webhook."""

    def __init__(self, client, number: str = RESIDENT, token: str = AUTH_TOKEN) -> None:
        self.client, self.number, self.token = client, number, token

    def payload(self, body: str | None, **extra: str) -> dict[str, str]:
        """Every field Twilio posts for an inbound SMS (extra fields override or add)."""
        sid = new_sid()
        params = {
            "ToCountry": "US",
            "ToState": "MO",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "KANSAS CITY",
            "FromZip": "64124",
            "SmsSid": sid,
            "FromState": "MO",
            "SmsStatus": "received",
            "FromCity": "KANSAS CITY",
            "Body": body if body is not None else "",
            "FromCountry": "US",
            "To": PROGRAM_NUMBER,
            "ToZip": "64106",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.number,
            "ApiVersion": "2010-04-01",
        }
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}

    def post(self, params: dict[str, str], path: str = "/sms", signature: str | None = None, **kw):
        if signature is None:
            signature = sign(path, params, self.token)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature}, **kw)

    def send(self, body: str | None, **extra: str):
        return self.post(self.payload(body, **extra))

    def text(self, body: str, **extra: str) -> list[str]:
        """Send a text and return the bodies of the bot's replies (asserting a clean 200)."""
        resp = self.send(body, **extra)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.mimetype == "text/xml"
        return twiml_bodies(resp.get_data(as_text=True))


def sign(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(BASE_URL + path, params)


def twiml_bodies(xml: str) -> list[str]:
    return [m.findtext("Body") or (m.text or "") for m in ET.fromstring(xml).iter("Message")]


@pytest.fixture
def phone(client) -> Phone:
    return Phone(client)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs the reference data in {SHARED} (absent on this machine)")
    return SHARED
