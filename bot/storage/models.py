"""Database tables, SQLAlchemy 2 typed style. All times are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.storage.crypto import SecretText, phone_lookup, phone_lookups
from bot.storage.statuses import FollowUpStatus, ReferralStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite gives them back naive, so re-attach UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Resident(Base):
    __tablename__ = "residents"
    # A web visitor never holds a number: a number they prove with a code lives on an SMS resident
    # they are linked to, so an inbound text can never land on (or be read from) a web record.
    __table_args__ = (
        CheckConstraint(
            "channel <> 'web' OR (phone IS NULL AND phone_lookup IS NULL)", name="ck_residents_web_holds_no_number"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(SecretText)  # E.164; encrypted with DATA_KEY, so not searchable
    phone_lookup: Mapped[str | None] = mapped_column(String(64), unique=True)  # crypto.phone_lookup(phone)
    chat_key: Mapped[str | None] = mapped_column(String(64), unique=True)  # web chat visitor
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    language: Mapped[str | None] = mapped_column(String(8))
    zip_code: Mapped[str | None] = mapped_column(String(10))
    timezone: Mapped[str | None] = mapped_column(String(64))
    opted_out_at: Mapped[datetime | None]
    consent_texts: Mapped[bool] = mapped_column(Boolean, default=True)
    # contact.ContactPreference: "reply_only" when she said "don't text me, he checks my phone"
    contact_preference: Mapped[str] = mapped_column(String(16), default="any")
    contact_chosen_at: Mapped[datetime | None]  # she chose it herself; until then it is contact.default_for
    consent_recorded_at: Mapped[datetime | None]
    undeliverable_reason: Mapped[str | None] = mapped_column(String(200))
    quiet_until: Mapped[datetime | None]  # loop guard
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    anonymized_at: Mapped[datetime | None]
    # Web visitors only: the SMS resident whose number they proved with a code, and when.
    linked_resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id", ondelete="SET NULL", name="fk_residents_linked_resident_id")
    )
    phone_verified_at: Mapped[datetime | None]
    # The canvass that reached them first (a code in their first text, or a canvasser's form): first touch wins.
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL", name="fk_residents_campaign_id")
    )

    linked: Mapped[Resident | None] = relationship(remote_side=[id], lazy="raise")

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None

    @staticmethod
    def with_phone(e164: str) -> ColumnElement[bool]:
        """The one way to find a resident by number: every lookup form the number may have now."""
        return Resident.phone_lookup.in_(phone_lookups(e164))


@event.listens_for(Resident.phone, "set")
def _phone_set(resident: Resident, value: str | None, _old: Any, _initiator: Any) -> None:
    """The lookup follows the number wherever the number is set, so the two never disagree."""
    resident.phone_lookup = phone_lookup(value) if value else None


class Campaign(Base):
    """A canvass: its code is printed on the cards ("Text HI IA1129") and typed by residents."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # upper case; matched exactly, ignoring case
    name: Mapped[str] = mapped_column(String(120))
    zips: Mapped[list[Any]] = mapped_column(default=list)  # the ZIP codes it walks
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationSession(Base):
    __tablename__ = "conversation_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), unique=True)
    flow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What an ordinary text needs besides the state, so that one read finds it (storage/turns.py):
    # the newest open referral (set whenever one opens; may go stale when it closes, never missing),
    # the newest check-in sent, and the loop guard's count of texts in the minute from recent_since.
    open_referral_id: Mapped[int | None] = mapped_column(Integer)
    checkin_id: Mapped[int | None] = mapped_column(Integer)
    recent_since: Mapped[datetime | None]
    recent_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_resident_created", "resident_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    # inbound | reply | contact.Outgoing (caseworker, followup, code, welcome, notice)
    kind: Mapped[str] = mapped_column(String(16), default="reply")
    body: Mapped[str | None] = mapped_column(SecretText)  # NULL once purged
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(24))  # a MessageStatus
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(300))
    segments: Mapped[int] = mapped_column(Integer, default=0)
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    in_reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    caseworker_id: Mapped[int | None] = mapped_column(ForeignKey("caseworkers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Caseworker(Base):
    __tablename__ = "caseworkers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16), default="caseworker")  # caseworker | admin
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    duty_hours: Mapped[str | None] = mapped_column(String(64))  # like OFFICE_HOURS; none = office hours
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of every session id: logging out bumps it, ending the account's sessions (a copied cookie too).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_status_created", "status", "created_at"),
        Index("ix_referrals_status_tier", "status", "tier", "created_at"),
        Index("ix_referrals_status_tier_queue", "status", "tier", "queue_at"),
        Index("ix_referrals_resident_status", "resident_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    category: Mapped[str | None] = mapped_column(String(32))
    zip_code: Mapped[str | None] = mapped_column(String(10))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[int] = mapped_column(Integer, default=0)  # triage.Tier: who can stand behind it; 0 first
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=ReferralStatus.NEW)
    outcome: Mapped[str | None] = mapped_column(String(32))  # an Outcome
    resource_ids: Mapped[list[Any]] = mapped_column(default=list)
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("caseworkers.id"))
    unread: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    contacted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    bot_resumed_at: Mapped[datetime | None]  # resident texted MENU during the hand-off
    crisis_kind: Mapped[str | None] = mapped_column(String(16))  # crisis.CrisisKind of a crisis referral
    escalation_due_at: Mapped[datetime | None]  # urgent with nobody on duty: the person on call is due a text
    notified_at: Mapped[datetime | None]  # a caseworker on duty, or the person on call, was told
    on_call_told_at: Mapped[datetime | None]  # a text to the person on call reached Twilio
    # The queue's order within a tier (triage.py): created_at brought forward by the risk score.
    queue_at: Mapped[datetime] = mapped_column(default=lambda ctx: ctx.get_current_parameters().get("created_at"))
    held_texts: Mapped[int] = mapped_column(Integer, default=0)  # texts that raised it during a crisis hold
    repeat: Mapped[bool] = mapped_column(Boolean, default=False)  # another referral of theirs in the 7 days before

    resident: Mapped[Resident] = relationship()
    assigned_to: Mapped[Caseworker | None] = relationship()


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    caseworker_id: Mapped[int | None] = mapped_column(ForeignKey("caseworkers.id"))
    body: Mapped[str | None] = mapped_column(SecretText)  # NULL once purged
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FollowUp(Base):
    __tablename__ = "follow_ups"
    __table_args__ = (
        Index("ix_follow_ups_status_due", "status", "due_at"),
        Index("ix_follow_ups_resident_status", "resident_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    template: Mapped[str] = mapped_column(String(64))
    body: Mapped[str | None] = mapped_column(Text)  # filled when sent
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(24), default=FollowUpStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    answer: Mapped[str | None] = mapped_column(String(16))
    answered_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("caseworkers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PhoneCode(Base):
    """A one-time code texted to a number a web visitor typed. Neither the code nor (with DATA_KEY) the
    number is stored: the code as a keyed hash, the number as its phone lookup."""

    __tablename__ = "phone_codes"
    __table_args__ = (
        Index("ix_phone_codes_lookup_created", "phone_lookup", "created_at"),
        Index("ix_phone_codes_resident_created", "resident_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))  # the web visitor
    phone_lookup: Mapped[str] = mapped_column(String(64))  # crypto.phone_lookup(number)
    code_hash: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]


class OptOutMarker(Base):
    """A number that had opted out and then erased its data (DELETE): only its keyed-hash lookup stays,
    so nothing the line starts reaches it until it texts START."""

    __tablename__ = "opt_out_markers"

    phone_lookup: Mapped[str] = mapped_column(String(64), primary_key=True)  # crypto.opt_out_marker(number)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("caseworkers.id"))
    action: Mapped[str] = mapped_column(String(48))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LoginFailure(Base):
    """Wrong passwords from one client (address) against one account (email), kept across processes.

    Both are keyed hashes (auth.throttle_key), so the table holds no address and no email.
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        UniqueConstraint("account_key", "client_key", name="uq_login_failures_pair"),
        Index("ix_login_failures_client", "client_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_key: Mapped[str] = mapped_column(String(64))
    client_key: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime]


class RateCount(Base):
    """How many times something happened for one key in one window (new web referrals per address per hour)."""

    __tablename__ = "rate_counts"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # a keyed hash, never the address itself
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
