"""Texts to staff: a notice per new referral to whoever is on duty, and escalation when nobody acts.

A notice carries the referral number and a link, never the resident's number, need or
words: a caseworker's phone shows texts on its lock screen.

Escalation texts go to ESCALATION_PHONES (the person on call): an urgent referral when nobody is
on duty, at once, so that the resident's answer can truthfully say the person on call was told;
and any referral nobody has claimed ESCALATE_AFTER_MINUTES after it came in. They are rate-limited:
at most one text to the on-call phones every ESCALATION_BATCH_MINUTES, and what comes in between
goes out together in the next one ("5 new referrals, 5 urgent"). A web visitor without a confirmed
number never escalates at once: a flood of web-chat "crises" reaches the on-call phone as one text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import logs
from bot.casework import audit
from bot.config import Settings
from bot.conversation.contact import Outgoing
from bot.conversation.flows import M
from bot.messaging import staffing
from bot.messaging.triage import Tier
from bot.runtime import Runtime
from bot.storage.models import Caseworker, Message, Referral
from bot.storage.statuses import MessageStatus, ReferralStatus

log = logging.getLogger(__name__)

THREAD_PATH = "/inbox/referrals/{id}"  # the inbox's thread view (bot/inbox/views.py)
QUEUE_PATH = "/inbox/"
REPEAT_AFTER = timedelta(minutes=10)  # the same notice to the same person at most this often
# Twilio took the text.
HANDED = frozenset(
    {
        MessageStatus.QUEUED,
        MessageStatus.ACCEPTED,
        MessageStatus.SENDING,
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
    }
)


def install(rt: Runtime, later: Callable[[Callable[[], object]], None] | None = None) -> None:
    """Notify after every referral the bot opens or raises; tell the person on call before the answer.

    `later` runs a notice once the resident's answer has gone out (the web app passes its own);
    without it a notice is sent at once."""
    defer = later or run_now
    rt.service.on_referral.append(lambda referral_id: defer(partial(notify_referral, rt, referral_id)))
    rt.service.escalator = partial(escalate_now, rt)


def run_now(job: Callable[[], object]) -> None:
    """Run a notice; a failure is logged, never raised into what opened the referral."""
    try:
        job()
    except Exception:  # a failed notice must not break the request that raised it
        log.exception("caseworker notice failed")


def on_duty(caseworker: Caseworker, settings: Settings, now: datetime) -> bool:
    """Inside the caseworker's duty hours (default: the office hours on working days)."""
    return staffing.on_duty(caseworker.duty_hours, settings, now)


def notice_text(rt: Runtime, referral_id: int, urgent: bool) -> str:
    link = (rt.settings.public_base_url or "") + THREAD_PATH.format(id=referral_id)
    key = M.CASEWORKER_NOTICE_URGENT if urgent else M.CASEWORKER_NOTICE
    return rt.engine.text(key, "en", referral=str(referral_id), link=link)


def notify_referral(rt: Runtime, referral_id: int) -> list[Message]:
    """Text the on-duty caseworkers (only the assignee, when they have the case and are on duty).
    Nobody on duty: the service has already asked `escalate_now` for an urgent one."""
    now = rt.clock.now()
    with rt.db.sessions() as s:
        referral = s.get(Referral, referral_id)
        if referral is None or referral.status == ReferralStatus.CLOSED:
            return []
        if referral.tier != Tier.TRUSTED:
            return []  # an unconfirmed web visitor: the queue shows it; phones are not texted for it
        staff = _on_duty_staff(s, rt.settings, referral, now)
        if not staff:
            logs.event("notice.nobody_on_duty", referral=referral_id, urgent=referral.urgent)
            return []
        body = notice_text(rt, referral.id, referral.urgent)
        told = _recently_told(s, referral.id, body, now)
    sent = [
        rt.outbound.send(
            referral.resident_id, body, Outgoing.NOTICE, referral_id=referral.id, caseworker_id=cw_id, to=phone
        )
        for cw_id, phone in staff
        if cw_id not in told
    ]
    if any(m.status in HANDED for m in sent):
        _mark_told(rt, [referral_id], now, on_call=False)
    return sent


def _on_duty_staff(s: Session, settings: Settings, referral: Referral, now: datetime) -> list[tuple[int, str]]:
    rows = s.scalars(
        select(Caseworker).where(Caseworker.active.is_(True), Caseworker.phone.is_not(None)).order_by(Caseworker.id)
    )
    here = [c for c in rows if on_duty(c, settings, now)]
    assignee = [c for c in here if c.id == referral.assigned_to_id]
    return [(c.id, c.phone) for c in (assignee or here) if c.phone]  # the query keeps only those with a phone


def _recently_told(s: Session, referral_id: int, body: str, now: datetime) -> set[int]:
    """Caseworkers who got this very notice a moment ago (a resident texting 'person' twice).
    Bodies are compared here, not in SQL: with DATA_KEY they are stored encrypted."""
    rows = s.execute(
        select(Message.caseworker_id, Message.body).where(
            Message.referral_id == referral_id,
            Message.kind == "notice",
            Message.caseworker_id.is_not(None),
            Message.created_at > now - REPEAT_AFTER,
        )
    )
    return {caseworker_id for caseworker_id, sent in rows if caseworker_id is not None and sent == body}


def escalate_now(rt: Runtime, referral_id: int) -> bool:
    """Text the person on call about one urgent referral, unless a text went to them within the batch
    window (it then waits for the next batch) or it came from an unconfirmed web visitor. True once
    a text reached Twilio: only then may the resident be told "the person on call has been told"."""
    now = rt.clock.now()
    if not rt.settings.escalation_phones:
        logs.event("escalation.no_phones", referral=referral_id)
        return False
    with rt.db.transaction() as s:
        referral = s.get(Referral, referral_id, with_for_update=True)
        if (
            referral is None
            or referral.escalated_at is not None
            or referral.status != ReferralStatus.NEW
            or referral.tier != Tier.TRUSTED
            or _in_batch_window(rt, s, now)
        ):
            return False
        _claim(s, [referral], now)
    return _send_escalation(rt, [referral], now)


def escalate_overdue(rt: Runtime, now: datetime) -> list[int]:
    """The scheduler's escalation check: every referral due a text to the person on call (urgent with
    nobody on duty, or unclaimed ESCALATE_AFTER_MINUTES after it came in), in one text per phone
    once the batch window allows; returns those escalated."""
    if not rt.settings.escalation_phones:
        return []
    cutoff = now - timedelta(minutes=rt.settings.escalate_after_minutes)
    with rt.db.transaction() as s:
        if _in_batch_window(rt, s, now):
            return []
        due = list(
            s.scalars(
                select(Referral)
                .where(
                    Referral.status == ReferralStatus.NEW,
                    Referral.escalated_at.is_(None),
                    (Referral.escalation_due_at <= now) | (Referral.created_at <= cutoff),
                )
                .order_by(Referral.id)
                .with_for_update()
            )
        )
        if not due:
            return []
        _claim(s, due, now)
    if not _send_escalation(rt, due, now):
        for referral in due:
            if referral.urgent and referral.notified_at is None:  # once: the service left it to this check
                log.warning("referral.notified_nobody referral=%s (the text to the person on call failed)", referral.id)
    return [r.id for r in due]


def _in_batch_window(rt: Runtime, s: Session, now: datetime) -> bool:
    """A text went to the on-call phones less than ESCALATION_BATCH_MINUTES ago."""
    last = s.scalar(select(func.max(Referral.escalated_at)))
    return last is not None and now - last < timedelta(minutes=rt.settings.escalation_batch_minutes)


def _claim(s: Session, referrals: list[Referral], now: datetime) -> None:
    """Mark them escalated before anything is sent, so no referral is escalated twice."""
    for referral in referrals:
        referral.escalated_at = now
        audit.record(
            s,
            "referral.escalated",
            now,
            resident_id=referral.resident_id,
            referral_id=referral.id,
            batch=len(referrals),
        )


def _send_escalation(rt: Runtime, referrals: list[Referral], now: datetime) -> bool:
    """One text per on-call phone: one referral by number and link, several as a count and the queue."""
    first = referrals[0]
    if len(referrals) == 1:
        body = notice_text(rt, first.id, first.urgent)
    else:
        body = rt.engine.text(
            M.CASEWORKER_NOTICE_BATCH,
            "en",
            count=str(len(referrals)),
            urgent=str(sum(r.urgent for r in referrals)),
            link=(rt.settings.public_base_url or "") + QUEUE_PATH,
        )
    sent = [
        rt.outbound.send(first.resident_id, body, Outgoing.NOTICE, referral_id=first.id, to=phone)
        for phone in rt.settings.escalation_phones
    ]
    handed = any(m.status in HANDED for m in sent)
    if handed:
        _mark_told(rt, [r.id for r in referrals], now, on_call=True)
    return handed


def _mark_told(rt: Runtime, referral_ids: list[int], now: datetime, *, on_call: bool) -> None:
    values = {"notified_at": func.coalesce(Referral.notified_at, now)}
    if on_call:
        values["on_call_told_at"] = func.coalesce(Referral.on_call_told_at, now)
    with rt.db.transaction() as s:
        s.execute(update(Referral).where(Referral.id.in_(referral_ids)).values(**values))
