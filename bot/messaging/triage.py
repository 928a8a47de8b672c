"""Where a referral sits in the inbox queue: tier first, then urgent, then the risk score.

The tier says who can stand behind a referral. A text from a phone (or a web visitor whose number
was confirmed) is a person; a web-chat visitor could be anyone, and many referrals from one
address in an hour may be one person flooding the queue, so those rank below. Nothing is ever
dropped: a lower tier is still in the queue, still counted, and still got the crisis answer.

Within a tier, urgent referrals (a crisis, a violence hand-off, NOT SAFE) come before the rest,
and within each, the higher score first. The score is minutes of waiting plus a bonus in minutes
(`risk_minutes`, README "Queue order"):

  self-harm, violence or abuse crisis  +240   any other crisis (overdose)   +120
  each text raised during a crisis hold  +20 (up to 5)
  another referral from them in the 7 days before  +60

So a self-harm crisis that came in now ranks with one of another kind that has waited two hours.
A verified or SMS number comes before an unverified web visitor by the tier itself. The score is
stored as a time, `queue_at` = created_at minus the bonus, so the database orders and pages by it
and it needs no recomputing as time passes; `rank` keeps it current when a referral is raised.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, Protocol

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.conversation.engine import CreateReferral
from bot.storage import counts
from bot.storage.models import Referral, Resident

WEB_REFERRALS = "web.referral"  # rate_counts scope: new web-chat referrals per address per hour


class Tier(IntEnum):
    TRUSTED = 0  # SMS, or a web visitor with a confirmed number
    WEB = 1  # a web-chat visitor with no confirmed number
    CROWDED = 2  # a web-chat visitor past WEB_REFERRALS_PER_HOUR from one address


# The queue's one order, here and nowhere else.
QUEUE_ORDER = (Referral.tier, Referral.urgent.desc(), Referral.queue_at, Referral.id)

SEVERE_CRISES = frozenset({"self_harm", "violence", "abuse"})
SEVERE_CRISIS = 240  # minutes: self-harm, violence or abuse
OTHER_CRISIS = 120  # any other crisis kind
HELD_TEXT = 20  # each text raised during a crisis hold ...
HELD_TEXTS_COUNTED = 5  # ... up to this many
REPEAT = 60  # another referral from the same person within REPEAT_WITHIN before this one
REPEAT_WITHIN = timedelta(days=7)


def risk_minutes(crisis_kind: str | None, held_texts: int, repeat: bool) -> int:
    """The score's bonus over time waiting, in minutes (the module docstring has the table)."""
    crisis = 0 if crisis_kind is None else SEVERE_CRISIS if crisis_kind in SEVERE_CRISES else OTHER_CRISIS
    return crisis + HELD_TEXT * min(held_texts, HELD_TEXTS_COUNTED) + (REPEAT if repeat else 0)


class Case(Protocol):
    """A referral as the rules below change it: an ORM Referral, or the webhook's Core row (turns.Case)."""

    urgent: bool
    category: str | None
    resource_ids: list[Any]
    unread: bool
    created_at: datetime
    crisis_kind: str | None
    held_texts: int
    repeat: bool
    queue_at: datetime
    notified_at: datetime | None
    escalation_due_at: datetime | None
    bot_resumed_at: datetime | None


def raise_open(case: Case, effect: CreateReferral) -> None:
    """Another need, or a text during the crisis hold, raises the open referral."""
    if case.crisis_kind and effect.crisis_kind:  # a text during the crisis hold raised it
        case.held_texts = (case.held_texts or 0) + 1
    case.urgent = case.urgent or effect.urgent
    case.category = case.category or effect.category
    case.resource_ids = list({*case.resource_ids, *effect.resource_ids})
    case.unread, case.bot_resumed_at = True, None


def mark_seen(case: Case, effect: CreateReferral, now: datetime, on_duty: bool) -> None:
    """After a referral is opened or raised: its crisis kind, who is told, and its place in the queue."""
    case.crisis_kind = case.crisis_kind or effect.crisis_kind
    if on_duty:  # a caseworker on duty sees the queue (and gets a notice after the commit)
        case.notified_at = case.notified_at or now
    elif effect.urgent:  # the person on call is due a text, now or in the next batch
        case.escalation_due_at = case.escalation_due_at or now
    rank(case)


def rank(referral: Case) -> None:
    """Keep `queue_at` true to the referral's score after it is opened or raised."""
    bonus = risk_minutes(referral.crisis_kind, referral.held_texts or 0, bool(referral.repeat))
    referral.queue_at = referral.created_at - timedelta(minutes=bonus)


def is_repeat(s: Session | Connection, resident_id: int, now: datetime) -> bool:
    """They had another referral opened in the 7 days before this one."""
    earlier = select(Referral.id).where(Referral.resident_id == resident_id, Referral.created_at >= now - REPEAT_WITHIN)
    return s.scalar(earlier.limit(1)) is not None


def new_referral_tier(s: Session, settings: Settings, resident: Resident, client: str | None, now: datetime) -> Tier:
    """The tier of a referral being opened; a web referral also counts against its address's hour."""
    if resident.channel != "web" or resident.linked_resident_id is not None:  # a proved number
        return Tier.TRUSTED
    if client is None:  # no address to count against (not through the web page)
        return Tier.WEB
    hour = now.replace(minute=0, second=0, microsecond=0)
    seen = counts.bump(s, WEB_REFERRALS, counts.keyed(settings.secret_key, "address", client), hour)
    return Tier.CROWDED if seen > settings.web_referrals_per_hour else Tier.WEB
