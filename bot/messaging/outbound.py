"""The one way out: every text the program sends goes through here and is recorded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import bindparam, null, select, update
from sqlalchemy.orm import Session, aliased
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot import logs
from bot.clock import Clock
from bot.config import Settings
from bot.conversation.contact import Outgoing, may_text_first
from bot.conversation.segments import segments, to_gsm
from bot.messaging.phones import mask, strip_numbers
from bot.messaging.rate import TokenBucket
from bot.storage.crypto import opt_out_marker
from bot.storage.db import Database
from bot.storage.models import Base, Message, OptOutMarker, Resident
from bot.storage.statuses import MessageStatus

log = logging.getLogger(__name__)

OPTED_OUT_ERROR = 21610  # "Attempt to send to unsubscribed recipient"
UNDELIVERABLE = {
    21211: "invalid phone number",
    30003: "unreachable handset",
    30005: "unknown or inactive number",
    30006: "landline or unreachable carrier",
}
RETRIES = 3
SHOWN_AT_ONCE = ("web", "terminal")  # answers read on the page or in the terminal: delivered as they are stored


@dataclass(frozen=True)
class SendResult:
    status: str  # a MessageStatus (Twilio may name one the line does not know)
    sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None


class Sender(Protocol):
    name: str

    def send(self, to: str, body: str, status_callback: str | None) -> SendResult: ...


class LogSender:
    """No Twilio account: the text is logged (number masked, body left out) and recorded."""

    name = "log"

    def send(self, to: str, body: str, status_callback: str | None) -> SendResult:
        logs.event("sms.logged", to=mask(to), chars=len(body))
        return SendResult(status=MessageStatus.LOGGED)


class TwilioSender:
    """Twilio REST with a 10 s timeout; retries only errors that prove nothing was sent. Thread-safe:
    every request, retries too, first takes a token from the sender's bucket (SENDER_MPS)."""

    name = "twilio"

    def __init__(
        self,
        settings: Settings,
        http_client: object | None = None,
        sleep: Callable[[float], None] = time.sleep,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=http_client or pooled_http_client(settings.send_concurrency),
        )
        self.origin = (
            {"messaging_service_sid": settings.twilio_messaging_service_sid}
            if settings.twilio_messaging_service_sid
            else {"from_": settings.twilio_from_number}
        )
        self.sleep = sleep
        self.bucket = bucket or TokenBucket(settings.sender_mps, sleep=sleep)

    def send(self, to: str, body: str, status_callback: str | None) -> SendResult:
        extra = {"status_callback": status_callback} if status_callback else {}
        for attempt in range(RETRIES):
            self.bucket.take()
            try:
                msg = self.client.messages.create(to=to, body=body, **self.origin, **extra)
                return SendResult(status=msg.status or MessageStatus.QUEUED, sid=msg.sid)
            except requests.exceptions.ConnectTimeout:
                result = SendResult(MessageStatus.FAILED, error_message="connection timed out")  # never connected
            except requests.exceptions.Timeout:
                # The request may have reached Twilio: resending could text twice.
                return SendResult(MessageStatus.UNKNOWN, error_message="timed out waiting for Twilio")
            except requests.exceptions.ConnectionError:
                result = SendResult(MessageStatus.FAILED, error_message="could not connect to Twilio")
            except TwilioRestException as exc:
                if exc.status >= 500:
                    return SendResult(MessageStatus.UNKNOWN, error_code=exc.code, error_message=f"Twilio {exc.status}")
                result = SendResult(MessageStatus.FAILED, error_code=exc.code, error_message=str(exc.msg)[:300])
                if exc.status != 429:
                    return result
            if attempt + 1 < RETRIES:
                self.sleep(0.5 * 2**attempt)
        return result


def pooled_http_client(connections: int) -> TwilioHttpClient:
    """The twilio client's own, with a connection kept open for each concurrent send (its default
    pool holds CPU count + 4, and each send past that would open a new TLS connection)."""
    client = TwilioHttpClient(timeout=10)
    assert client.session is not None  # pool_connections defaults to True
    client.session.mount("https://", HTTPAdapter(pool_maxsize=connections))
    return client


def make_sender(settings: Settings) -> Sender:
    return TwilioSender(settings) if settings.sender_name == "twilio" else LogSender()


class Outbound:
    """Records and sends texts: TwiML replies, caseworker replies, follow-ups, notices."""

    def __init__(self, settings: Settings, db: Database, sender: Sender, clock: Clock) -> None:
        self.settings, self.db, self.sender, self.clock = settings, db, sender, clock

    def status_callback(self, reply_id: int | None = None) -> str | None:
        base = self.settings.public_base_url
        if not base:
            return None
        return f"{base}/sms/status" + (f"?reply={reply_id}" if reply_id else "")

    def record_reply(
        self, session: Session, resident: Resident, body: str, inbound: Message, flush: bool = True
    ) -> Message:
        """Store the answer to an inbound text; it leaves as TwiML (or JSON for web chat).
        With flush=False the caller flushes (once for all the replies) before it reads their ids."""
        msg = Message(**self.reply_row(resident.id, inbound.channel, body, inbound.id))
        session.add(msg)
        if flush:
            session.flush()
        return msg

    def reply_row(self, resident_id: int, channel: str, body: str, inbound_id: int) -> dict[str, Any]:
        """The stored answer to an inbound text, as column values (the ORM's and the fast path's)."""
        body, now = self.as_sent(body, by_sms=channel != "web"), self.clock.now()
        return {
            "resident_id": resident_id,
            "direction": "out",
            "channel": channel,
            "kind": "reply",
            "body": body,
            "provider_sid": None,
            "status": MessageStatus.QUEUED if channel not in SHOWN_AT_ONCE else MessageStatus.DELIVERED,
            "segments": segments(body),
            "num_media": 0,
            "in_reply_to_id": inbound_id,
            "referral_id": None,
            "created_at": now,
            "updated_at": now,
        }

    def send(
        self,
        resident_id: int,
        body: str,
        kind: str,
        *,
        referral_id: int | None = None,
        caseworker_id: int | None = None,
        to: str | None = None,
        record_as: str | None = None,
        on_recorded: Callable[[Session, Message], None] | None = None,
    ) -> Message:
        """Send one text the resident did not just ask for, to their number (a web visitor's: the one
        they proved), or to `to` (a notice to staff, a code to a number a visitor typed), never to
        an opted-out number. `record_as` is stored instead of `body` (a one-time code is never stored).

        The attempt is stored (committed) before the text leaves, the outcome after. `on_recorded`
        runs inside the transaction that stores the outcome, so a caller's own row (a follow-up)
        commits together with the message's status."""
        msg, phone = self._record_attempt(resident_id, body, record_as, kind, referral_id, caseworker_id, to)
        if msg.status != MessageStatus.SENDING:
            if on_recorded is not None:
                with self.db.transaction() as session:
                    on_recorded(session, msg)
            return msg
        number = to or phone
        assert number is not None  # a text is only SENDING with a number to send it to
        result = self.sender.send(number, self.as_sent(body, by_sms=True), self.status_callback())
        return self._record_result(msg, resident_id, result, own_number=to is None, on_recorded=on_recorded)

    def welcome(self, resident_id: int, body: str, *, to: str | None = None) -> Message:
        """A canvass welcome (issue 15) to a resident, or to the number a canvasser took down: like every
        text the line starts, refused as `held_contact_preference` unless the preference allows it."""
        return self.send(resident_id, body, Outgoing.WELCOME, to=to)

    def as_sent(self, body: str, *, by_sms: bool) -> str:
        """The text as it leaves: by SMS in its GSM-7 form where that saves a segment (segments.to_gsm)."""
        return to_gsm(body, fold_accents=self.settings.fold_accents) if by_sms else body

    def _record_attempt(
        self,
        resident_id: int,
        body: str,
        record_as: str | None,
        kind: str,
        referral_id: int | None,
        caseworker_id: int | None,
        to: str | None,
    ) -> tuple[Message, str | None]:
        """Store the text as `sending` (or why it is not sent); return it and the number it goes to."""
        now = self.clock.now()
        with self.db.transaction() as session:
            resident = session.execute(_RECIPIENT, {"resident_id": resident_id}).first()
            number = session.execute(_NUMBER.where(Resident.with_phone(to))).first() if to is not None else None
            if to is not None:
                phone, opted_out = to, number is not None and number.opted_out_at is not None
            elif resident is None:
                phone, opted_out = None, True
            else:
                phone, opted_out = resident.phone, resident.opted_out_at is not None
                if resident.linked_id is not None:  # a web visitor: the number they proved, unless it opted
                    # out by text; then, like a visitor without a number, they read it on the chat page
                    phone = resident.linked_phone if resident.linked_opted_out_at is None else None
            marker = opt_out_marker(self.settings.secret_key, phone) if phone else None
            opted_out = opted_out or (marker is not None and session.scalar(_MARKED, {"marker": marker}) is not None)
            # "delivered": to a web chat visitor without a proven number, who reads it on the chat page
            status = (
                MessageStatus.SKIPPED_OPTED_OUT
                if opted_out
                else MessageStatus.SENDING
                if phone
                else MessageStatus.DELIVERED
            )
            if status == MessageStatus.SENDING and not _allowed(resident if to is None else number, kind, now):
                # the resident said how we may reach them (contact.py)
                status = MessageStatus.HELD_CONTACT_PREFERENCE
            sent = self.as_sent(body, by_sms=phone is not None)
            msg = Message(
                resident_id=resident_id,
                direction="out",
                channel="sms" if phone or resident is None else resident.channel,
                kind=kind,
                body=record_as if record_as is not None else self.as_sent(body, by_sms=phone is not None),
                status=status,
                segments=segments(sent),
                referral_id=referral_id,
                caseworker_id=caseworker_id,
                created_at=now,
                updated_at=now,
            )
            session.add(msg)
        if status in (MessageStatus.SKIPPED_OPTED_OUT, MessageStatus.HELD_CONTACT_PREFERENCE):
            logs.event(f"sms.{status}", message=msg.id)
        return msg, phone

    def _record_result(
        self,
        msg: Message,
        resident_id: int,
        result: SendResult,
        own_number: bool,
        on_recorded: Callable[[Session, Message], None] | None = None,
    ) -> Message:
        """Store what the sender said, by primary key (no read back); `msg` is updated to match.
        A provider's error text names the number it failed on: the number is left out."""
        now = self.clock.now()
        error = strip_numbers(result.error_message)[:300] if result.error_message else None
        values = {
            "status": result.status,
            "provider_sid": result.sid,
            "error_code": result.error_code,
            "error_message": error,
            "updated_at": now,
        }
        with self.db.transaction() as session:
            session.execute(_STORE_RESULT, {"message_id": msg.id, **{f"new_{k}": v for k, v in values.items()}})
            if result.error_code is not None and own_number:
                apply_error(session, resident_id, result.error_code, now)
            for key, value in values.items():
                setattr(msg, key, value)  # detached: a plain copy of the stored row for the caller
            if on_recorded is not None:
                on_recorded(session, msg)
        logs.event("sms.sent", message=msg.id, status=result.status, error=result.error_code or "-")
        return msg


# Built once (statement construction costs more than running them): who a text goes to, and a
# plain UPDATE by primary key for the outcome, bypassing the ORM's bulk-update machinery.
_Linked = aliased(Resident)
_RECIPIENT = (
    select(
        Resident.channel,
        Resident.phone,
        Resident.opted_out_at,
        Resident.contact_preference,
        Resident.last_seen_at,
        _Linked.id.label("linked_id"),
        _Linked.phone.label("linked_phone"),
        _Linked.opted_out_at.label("linked_opted_out_at"),
        _Linked.contact_preference.label("linked_preference"),
        _Linked.last_seen_at.label("linked_last_seen_at"),
    )
    .outerjoin(_Linked, _Linked.id == Resident.linked_resident_id)
    .where(Resident.id == bindparam("resident_id"))
)


def _allowed(recipient: Any, kind: str, now: datetime) -> bool:
    """The contact preference allows a text of `kind` the resident did not just ask for: her own
    record's, for a web visitor the proved number's too, and for a text to a typed number (a code,
    a canvass welcome) that number's own record's (any of them may have said "don't text me first")."""
    if recipient is None:  # a number the line has never heard from
        return True
    if not may_text_first(recipient.contact_preference, recipient.last_seen_at, now, kind):
        return False
    return recipient.linked_id is None or may_text_first(
        recipient.linked_preference,
        max(filter(None, (recipient.last_seen_at, recipient.linked_last_seen_at)), default=None),
        now,
        kind,
    )


# A number's own (SMS) record: if it opted out, nothing but that record's own answers goes to it;
# its contact preference holds for a text to the number from anywhere.
_NUMBER = (
    select(Resident.opted_out_at, Resident.contact_preference, Resident.last_seen_at, null().label("linked_id"))
    .where(Resident.channel != "web")
    .order_by(Resident.opted_out_at.is_(None))
    .limit(1)
)
# A number that opted out and then erased its data (DELETE) keeps only this marker (retention.erase).
_MARKED = select(OptOutMarker.phone_lookup).where(OptOutMarker.phone_lookup == bindparam("marker"))
_messages = Base.metadata.tables[Message.__tablename__]  # the Table itself (__table__ is typed as any FromClause)
_STORE_RESULT = (
    update(_messages)
    .where(_messages.c.id == bindparam("message_id"))
    .values({c: bindparam(f"new_{c}") for c in ("status", "provider_sid", "error_code", "error_message", "updated_at")})
)


def apply_error(session: Session, resident_id: int, code: int, now) -> None:
    """What a Twilio error code tells us about the resident's number (a web visitor's: the record of
    the number they proved, which is where an opt-out of that number belongs)."""
    resident = session.get(Resident, resident_id)
    if resident is not None and resident.linked_resident_id is not None:
        resident = session.get(Resident, resident.linked_resident_id)
    if resident is None:
        return
    if code == OPTED_OUT_ERROR and resident.opted_out_at is None:
        resident.opted_out_at = now
    elif code in UNDELIVERABLE:
        resident.undeliverable_reason = f"{code}: {UNDELIVERABLE[code]}"
