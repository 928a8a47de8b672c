"""Texts to staff: a notice per new referral to whoever is on duty, and escalation when nobody acts.

A notice carries the referral number and a link, never the resident's number, need or
words: a caseworker's phone shows texts on its lock screen.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from flask import Response, after_this_request, has_request_context
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit, logs
from .config import ConfigError, Settings, parse_office_hours
from .models import Caseworker, Message, Referral
from .runtime import Runtime

log = logging.getLogger(__name__)

THREAD_PATH = "/inbox/referrals/{id}"  # the inbox's thread view (bot/inbox/views.py)
REPEAT_AFTER = timedelta(minutes=10)  # the same notice to the same person at most this often


def install(rt: Runtime) -> None:
    """Notify after every referral the bot opens or raises."""
    rt.service.on_referral.append(lambda referral_id: after_response(partial(notify_referral, rt, referral_id)))


def after_response(job: Callable[[], object]) -> None:
    """Run `job` once the response has gone out (a slow SMS API must not hold back the
    resident's reply, which may be a crisis answer); outside a request, run it now."""
    if not has_request_context():
        _run(job)
        return

    @after_this_request
    def _later(response: Response) -> Response:
        response.call_on_close(lambda: _run(job))
        return response


def _run(job: Callable[[], object]) -> None:
    try:
        job()
    except Exception:  # a failed notice must not break the request that raised it
        log.exception("caseworker notice failed")


def on_duty(caseworker: Caseworker, settings: Settings, now: datetime) -> bool:
    """Inside the caseworker's duty hours (default: the office hours), in the program's time zone."""
    try:
        hours = parse_office_hours(caseworker.duty_hours) if caseworker.duty_hours else settings.office_hours
    except ConfigError:
        logs.event("notice.bad_duty_hours", caseworker=caseworker.id)
        return False
    local = now.astimezone(settings.program_timezone)
    return hours.is_open(local.weekday(), local.time())


def notice_text(rt: Runtime, referral_id: int, urgent: bool) -> str:
    link = (rt.settings.public_base_url or "") + THREAD_PATH.format(id=referral_id)
    key = "caseworker_notice_urgent" if urgent else "caseworker_notice"
    return rt.engine.text(key, "en", referral=str(referral_id), link=link)


def notify_referral(rt: Runtime, referral_id: int) -> list[Message]:
    """Text the on-duty caseworkers (only the assignee, when they have the case and are on duty);
    an urgent referral with nobody on duty escalates at once."""
    now = rt.clock.now()
    with rt.db.sessions() as s:
        referral = s.get(Referral, referral_id)
        if referral is None or referral.status == "closed":
            return []
        staff = _on_duty_staff(s, rt.settings, referral, now)
        body = notice_text(rt, referral.id, referral.urgent)
        told = _recently_told(s, referral.id, body, now)
    if not staff:
        logs.event("notice.nobody_on_duty", referral=referral_id, urgent=referral.urgent)
        return escalate(rt, referral_id, now) if referral.urgent else []
    return [rt.outbound.send(referral.resident_id, body, "notice", referral_id=referral.id,
                             caseworker_id=cw_id, to=phone)
            for cw_id, phone in staff if cw_id not in told]


def _on_duty_staff(s: Session, settings: Settings, referral: Referral, now: datetime) -> list[tuple[int, str]]:
    rows = s.scalars(select(Caseworker).where(Caseworker.active.is_(True), Caseworker.phone.is_not(None))
                     .order_by(Caseworker.id))
    here = [c for c in rows if on_duty(c, settings, now)]
    assignee = [c for c in here if c.id == referral.assigned_to_id]
    return [(c.id, c.phone) for c in (assignee or here)]


def _recently_told(s: Session, referral_id: int, body: str, now: datetime) -> set[int]:
    """Caseworkers who got this very notice a moment ago (a resident texting 'person' twice).
    Bodies are compared here, not in SQL: with DATA_KEY they are stored encrypted."""
    rows = s.execute(select(Message.caseworker_id, Message.body).where(
        Message.referral_id == referral_id, Message.kind == "notice",
        Message.caseworker_id.is_not(None), Message.created_at > now - REPEAT_AFTER))
    return {caseworker_id for caseworker_id, sent in rows if sent == body}


def escalate(rt: Runtime, referral_id: int, now: datetime) -> list[Message]:
    """Text ESCALATION_PHONES about a referral, once: `escalated_at` is claimed before sending."""
    phones = rt.settings.escalation_phones
    if not phones:
        logs.event("escalation.no_phones", referral=referral_id)
        return []
    with rt.db.transaction() as s:
        claimed = s.execute(update(Referral).where(Referral.id == referral_id, Referral.escalated_at.is_(None))
                            .values(escalated_at=now)).rowcount
        referral = s.get(Referral, referral_id)
        if claimed:
            audit.record(s, "referral.escalated", now, resident_id=referral.resident_id,
                         referral_id=referral_id, phones=len(phones))
    if not claimed:
        return []
    body = notice_text(rt, referral_id, referral.urgent)
    return [rt.outbound.send(referral.resident_id, body, "notice", referral_id=referral_id, to=phone)
            for phone in phones]


def escalate_overdue(rt: Runtime, now: datetime) -> list[int]:
    """Referrals nobody has claimed ESCALATE_AFTER_MINUTES after they came in; returns those escalated."""
    if not rt.settings.escalation_phones:
        return []
    cutoff = now - timedelta(minutes=rt.settings.escalate_after_minutes)
    with rt.db.sessions() as s:
        waiting = list(s.scalars(select(Referral.id).where(
            Referral.status == "new", Referral.escalated_at.is_(None), Referral.created_at <= cutoff)
            .order_by(Referral.id)))
    return [referral_id for referral_id in waiting if escalate(rt, referral_id, now)]
