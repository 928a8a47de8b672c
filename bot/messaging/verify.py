"""Proving a number before the line uses it: a one-time code texted to it, typed back on the web page.

A number a web visitor types is only ever texted this code until the code comes back. Then the
visitor is linked to the number's own SMS record (found, or created, by its phone lookup) and never
merged with it: the SMS conversation stays where it is, and the visitor's chat page shows only the
visitor's own record. Codes live in `phone_codes`, as a keyed hash; every try is counted there, so
the limits hold across processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bot import logs
from bot.casework import audit
from bot.messaging.phones import BadNumber, mask, resident_e164
from bot.runtime import Runtime
from bot.storage.crypto import phone_lookup, phone_lookups
from bot.storage.models import PhoneCode, Resident

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_TRIES = 5  # per code
DAY = timedelta(days=1)
CODES_PER_NUMBER = 3  # a day, whoever asks: nobody can flood someone's phone with codes
CODES_PER_VISITOR = 5  # a day, whatever numbers they type
MASKED_CODE = "•" * CODE_DIGITS  # what the stored copy of the text says instead of the code


class CodeRefused(Exception):
    """The code was not sent or not accepted; the reason is for the visitor (400, or 429 for a limit)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class Checked(StrEnum):
    """What a typed code turned out to be."""

    RIGHT = "right"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED_UP = "used_up"  # MAX_TRIES wrong ones, or already confirmed


@dataclass(frozen=True)
class Linked:
    visitor_id: int
    resident_id: int  # the number's own SMS record


def number(rt: Runtime, raw: str) -> str:
    """The typed number in E.164, if the line may text it (ALLOWED_COUNTRIES, a person's kind of number)."""
    try:
        return resident_e164(raw, rt.settings.allowed_countries)
    except BadNumber as exc:
        raise CodeRefused(f"phone: {exc}") from None


def request_code(rt: Runtime, chat_key: str, raw_phone: str) -> None:
    """Text a new code to the number, within the limits. An opted-out number gets nothing, but the
    answer is the same, so the page never tells anyone whether a number has used the line."""
    phone, now = number(rt, raw_phone), rt.clock.now()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    with rt.db.transaction() as s:
        visitor = rt.service.lock_resident(s, "web", chat_key, now)
        _lock_number(s, rt, phone)
        _check_limits(s, visitor.id, phone, now)
        s.add(
            PhoneCode(
                resident_id=visitor.id,
                phone_lookup=phone_lookup(phone),
                created_at=now,
                code_hash=_hash(rt, code),
                expires_at=now + CODE_LIFETIME,
                attempts=0,
            )
        )
        audit.record(s, "phone.code_requested", now, resident_id=visitor.id)
        visitor_id, lang = visitor.id, visitor.language or "en"
    msg = rt.outbound.send(
        visitor_id,
        rt.engine.text("phone_code", lang, code=code),
        "code",
        to=phone,
        record_as=rt.engine.text("phone_code", lang, code=MASKED_CODE),
    )
    logs.event("phone.code_sent", resident=visitor_id, to=mask(phone), status=msg.status)


def confirm_code(rt: Runtime, chat_key: str | None, raw_phone: str, raw_code: str) -> Linked:
    """Check the code; when it is right, link the visitor to the number's own record and record consent."""
    phone, now = number(rt, raw_phone), rt.clock.now()
    code = "".join(raw_code.split()).replace("-", "")
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        raise CodeRefused(f"code: type the {CODE_DIGITS} digits we texted")
    with rt.db.transaction() as s:
        visitor = (
            s.scalar(select(Resident).where(Resident.chat_key == chat_key).with_for_update()) if chat_key else None
        )
        row = (
            None
            if visitor is None
            else s.scalar(
                select(PhoneCode)
                .where(PhoneCode.resident_id == visitor.id, PhoneCode.phone_lookup.in_(phone_lookups(phone)))
                .order_by(PhoneCode.id.desc())
                .limit(1)
                .with_for_update()
            )
        )
        if visitor is None or row is None:
            raise CodeRefused("code: we have not texted a code to this number; ask for one first")
        checked = _check(rt, row, code, now)
        linked = _link(s, rt, visitor, phone, now) if checked is Checked.RIGHT else None
        audit.record(s, "phone.code_checked", now, resident_id=visitor.id, result=str(checked))
    # Raised after the commit: a wrong try counts even though the request fails.
    if checked is Checked.WRONG:
        raise CodeRefused("code: that is not the code we texted")
    if checked is Checked.EXPIRED:
        raise CodeRefused("code: that code has expired; ask for a new one")
    if checked is Checked.USED_UP:
        raise CodeRefused("code: that code cannot be used again; ask for a new one", 429)
    assert linked is not None  # every other check result raised above
    logs.event("phone.verified", resident=linked.visitor_id, linked=linked.resident_id)
    return linked


def _check(rt: Runtime, row: PhoneCode, code: str, now: datetime) -> Checked:
    if row.confirmed_at is not None or row.attempts >= MAX_TRIES:
        return Checked.USED_UP
    if now >= row.expires_at:
        return Checked.EXPIRED
    row.attempts += 1
    if not _matches(rt, row.code_hash, code):
        return Checked.WRONG
    row.confirmed_at = now
    return Checked.RIGHT


def _link(s: Session, rt: Runtime, visitor: Resident, phone: str, now: datetime) -> Linked:
    """The number's own SMS record (found or made) gets the consent; the visitor points at it."""
    owner = rt.service.lock_resident(s, "sms", phone, now)
    visitor.linked_resident_id, visitor.phone_verified_at = owner.id, now
    for resident in (visitor, owner):
        resident.consent_texts, resident.consent_recorded_at = True, now
    audit.record(s, "consent.recorded", now, resident_id=visitor.id, channel="web", linked_resident_id=owner.id)
    return Linked(visitor.id, owner.id)


def _check_limits(s: Session, visitor_id: int, phone: str, now: datetime) -> None:
    since = now - DAY
    per_number = (
        s.scalar(
            select(func.count(PhoneCode.id)).where(
                PhoneCode.phone_lookup.in_(phone_lookups(phone)), PhoneCode.created_at > since
            )
        )
        or 0
    )
    if per_number >= CODES_PER_NUMBER:
        raise CodeRefused("phone: we have texted this number enough codes today; try again tomorrow", 429)
    per_visitor = (
        s.scalar(
            select(func.count(PhoneCode.id)).where(PhoneCode.resident_id == visitor_id, PhoneCode.created_at > since)
        )
        or 0
    )
    if per_visitor >= CODES_PER_VISITOR:
        raise CodeRefused("phone: you have asked for enough codes today; try again tomorrow", 429)


def _lock_number(s: Session, rt: Runtime, phone: str) -> None:
    """Serialise code requests for one number, so two at once cannot both slip under its limit
    (SQLite's BEGIN IMMEDIATE already serialises every write transaction)."""
    if rt.db.dialect == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": phone_lookup(phone)})


def _hash(rt: Runtime, code: str, salt: str | None = None) -> str:
    """'salt$HMAC-SHA256(SECRET_KEY, salt:code)': a stolen table does not give the codes back."""
    salt = salt or secrets.token_hex(8)
    digest = hmac.new(rt.settings.secret_key.encode(), f"{salt}:{code}".encode(), hashlib.sha256).hexdigest()
    return f"{salt}${digest}"


def _matches(rt: Runtime, stored: str, code: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(stored, _hash(rt, code, salt))
