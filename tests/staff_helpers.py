"""Staff-side test helpers: accounts, a caseworker's browser that logs in and posts forms with CSRF tokens."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from bot.storage.models import Referral
from bot.web import auth

PASSWORD = "a long enough password"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fast_argon2(monkeypatch):
    """Cheap argon2 parameters (the real ones take a third of a second per check on CI machines)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    dummy = cheap.hash("no such account")
    monkeypatch.setattr(auth, "hasher", cheap)
    monkeypatch.setattr(auth, "_dummy_hash", lambda: dummy)


def add_caseworker(rt, email: str = "ana@example.org", name: str = "Ana", **fields) -> int:
    return auth.create_caseworker(
        rt.db, rt.clock.now(), email=email, name=name, password=fields.pop("password", PASSWORD), **fields
    )


def token_in(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


class Staff:
    """A caseworker's browser over the Flask test client; every form carries the page's CSRF token."""

    def __init__(self, client) -> None:
        self.client = client
        self.token: str | None = None

    def login(self, email: str = "ana@example.org", password: str = PASSWORD, **extra: str):
        token = token_in(self.client.get("/login").get_data(as_text=True))
        self.token = None  # a login starts a new session, and with it a new token
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token, **extra})

    def get(self, path: str):
        return self.client.get(path)

    def post(self, path: str, **data: str):
        if self.token is None:
            self.token = token_in(self.client.get("/inbox/").get_data(as_text=True))
        return self.client.post(path, data={**data, "csrf_token": self.token})


def open_referral(phone, rt, text: str = "talk to a person") -> int:
    """A resident asks for a person through the signed webhook; returns the referral's id."""
    phone.text(text)
    with rt.db.sessions() as s:
        return s.scalars(select(Referral.id).order_by(Referral.id.desc())).first()
