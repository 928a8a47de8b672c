"""Caseworker notices and escalation: who is texted, what the text says (and never says), and only once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import BASE_URL, RESIDENT, twiml_bodies
from sqlalchemy import select
from staff_helpers import add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.casework import cases
from bot.config import load_settings
from bot.messaging import notify
from bot.messaging.scheduler import tick
from bot.storage.models import AuditEvent, Caseworker, Message, Referral

ESCALATION = "+18165550190"
ANA, BEN, CY = "+18165550141", "+18165550142", "+18165550143"
SATURDAY_NIGHT = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)  # Sat 5 Dec, 23:00 in Kansas City


@pytest.fixture
def env(env):
    return {**env, "ESCALATION_PHONES": ESCALATION, "ESCALATE_AFTER_MINUTES": "30"}


@pytest.fixture
def sender(outbox):
    return outbox


@pytest.fixture
def team(rt) -> dict[str, int]:
    """Ana is on duty (office hours); Ben works weekends; Cy is turned off; Di has no phone."""
    ids = {
        "ana": add_caseworker(rt, "ana@example.org", "Ana", phone=ANA),
        "ben": add_caseworker(rt, "ben@example.org", "Ben", phone=BEN, duty_hours="Sat-Sun 09:00-17:00"),
        "cy": add_caseworker(rt, "cy@example.org", "Cy", phone=CY),
        "di": add_caseworker(rt, "di@example.org", "Di"),
    }
    with rt.db.transaction() as s:
        s.get(Caseworker, ids["cy"]).active = False
    return ids


def text(phone, body: str) -> list[str]:
    """Text the program and let the response finish, as a real server does (notices go after it)."""
    resp = phone.send(body)
    assert resp.status_code == 200
    replies = twiml_bodies(resp.get_data(as_text=True))
    resp.close()
    return replies


def latest_referral(rt) -> Referral:
    with rt.db.sessions() as s:
        return s.scalars(select(Referral).order_by(Referral.id.desc())).first()


def notice(referral_id: int, urgent: bool = False) -> str:
    link = f"{BASE_URL}/inbox/referrals/{referral_id}"
    if urgent:
        return f"Peaceline URGENT: referral #{referral_id} needs a person now. Open it here: {link}"
    return f"Peaceline: new referral #{referral_id}. Open it here: {link}"


# -- notices -----------------------------------------------------------------------------------------------


def test_a_new_referral_texts_the_active_on_duty_caseworkers_with_a_phone_and_no_one_else(rt, phone, outbox, team):
    text(phone, "hi")
    text(phone, "I need help paying my rent, my landlord is evicting me")
    text(phone, "talk to a person")
    rid = latest_referral(rt).id
    assert outbox.sent == [(ANA, notice(rid))]
    body = outbox.sent[0][1]
    for detail in (RESIDENT, "0123", "rent", "evict", "person", "landlord"):
        assert detail not in body.lower()
    with rt.db.sessions() as s:
        recorded = s.scalars(select(Message).where(Message.kind == "notice")).one()
    assert (recorded.caseworker_id, recorded.referral_id, recorded.status) == (team["ana"], rid, "queued")


def test_the_notice_leaves_after_the_residents_reply(rt, phone, outbox, team):
    resp = phone.send("talk to a person")
    assert twiml_bodies(resp.get_data(as_text=True)) and outbox.sent == []
    resp.close()
    assert outbox.to(ANA) == [notice(latest_referral(rt).id)]


def test_a_failing_notice_never_breaks_the_residents_reply(rt, phone, outbox, team):
    outbox.broken.add(ANA)
    assert text(phone, "talk to a person")  # answered, and closing the response raised nothing
    assert latest_referral(rt).status == "new"


def test_a_claimed_case_is_news_for_its_caseworker_alone(rt, phone, outbox, team):
    add_caseworker(rt, "eve@example.org", "Eve", phone="+18165550145")
    text(phone, "talk to a person")
    rid = latest_referral(rt).id
    cases.claim(rt, rid, team["ana"])
    outbox.sent.clear()
    text(phone, "he is hitting me")
    assert outbox.sent == [(ANA, notice(rid, urgent=True))]


def test_the_same_notice_is_not_repeated_within_minutes(rt, phone, outbox, team, clock):
    text(phone, "talk to a person")
    rid = latest_referral(rt).id
    assert notify.notify_referral(rt, rid) == []
    clock.set(clock.now() + notify.REPEAT_AFTER + timedelta(seconds=1))
    assert [m.body for m in notify.notify_referral(rt, rid)] == [notice(rid)]


def test_on_duty_follows_duty_hours_in_the_program_time_zone(settings):
    tuesday_10am = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    tuesday_5_30pm = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    office = Caseworker(id=1, duty_hours=None)
    evenings = Caseworker(id=2, duty_hours="Mon-Fri 12:00-20:00")
    broken = Caseworker(id=3, duty_hours="sometimes")
    assert notify.on_duty(office, settings, tuesday_10am) and not notify.on_duty(office, settings, tuesday_5_30pm)
    assert notify.on_duty(evenings, settings, tuesday_5_30pm) and not notify.on_duty(evenings, settings, tuesday_10am)
    assert not notify.on_duty(broken, settings, tuesday_10am)


# -- escalation ------------------------------------------------------------------------------------------------


def test_an_urgent_referral_with_nobody_on_duty_goes_to_the_escalation_phones_at_once(rt, phone, outbox, team, clock):
    clock.set(SATURDAY_NIGHT)
    text(phone, "he is hitting me")
    referral = latest_referral(rt)
    assert referral.urgent and outbox.sent == [(ESCALATION, notice(referral.id, urgent=True))]
    assert referral.escalated_at == SATURDAY_NIGHT
    clock.set(SATURDAY_NIGHT + timedelta(hours=2))
    assert notify.escalate_overdue(rt, clock.now()) == []
    assert len(outbox.sent) == 1
    with rt.db.sessions() as s:
        assert (
            s.scalars(select(AuditEvent.action).where(AuditEvent.referral_id == referral.id))
            .all()
            .count("referral.escalated")
            == 1
        )


def test_a_referral_nobody_claims_is_escalated_once_after_the_wait(rt, phone, outbox, team, clock):
    clock.set(SATURDAY_NIGHT)
    text(phone, "talk to a person")
    rid = latest_referral(rt).id
    assert outbox.sent == []  # nobody on duty, not urgent: the escalation check will see to it
    assert notify.escalate_overdue(rt, SATURDAY_NIGHT + timedelta(minutes=29)) == []
    assert notify.escalate_overdue(rt, SATURDAY_NIGHT + timedelta(minutes=30)) == [rid]
    assert notify.escalate_overdue(rt, SATURDAY_NIGHT + timedelta(minutes=45)) == []
    assert outbox.sent == [(ESCALATION, notice(rid))]


def test_a_claimed_referral_is_not_escalated(rt, phone, outbox, team, clock):
    text(phone, "talk to a person")
    cases.claim(rt, latest_referral(rt).id, team["ana"])
    assert notify.escalate_overdue(rt, clock.now() + timedelta(hours=1)) == []
    assert outbox.to(ESCALATION) == []


def test_the_scheduler_tick_runs_the_escalation_check(app, rt, phone, outbox, team, clock):
    clock.set(SATURDAY_NIGHT)
    text(phone, "talk to a person")
    clock.set(SATURDAY_NIGHT + timedelta(minutes=31))
    tick(app.extensions["peaceline"])
    assert outbox.to(ESCALATION) == [notice(latest_referral(rt).id)]


def test_without_escalation_phones_nothing_is_escalated_or_marked(env, clock, outbox):
    quiet = create_app(load_settings({**env, "ESCALATION_PHONES": ""}), clock=clock, sender=outbox)
    rt = quiet.extensions["peaceline"]
    try:
        clock.set(SATURDAY_NIGHT)
        rt.service.handle(channel="sms", address=RESIDENT, text="he is hitting me")
        assert notify.escalate_overdue(rt, SATURDAY_NIGHT + timedelta(hours=1)) == []
        assert outbox.sent == [] and latest_referral(rt).escalated_at is None
    finally:
        rt.db.dispose()
