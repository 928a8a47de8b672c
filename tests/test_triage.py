"""The queue's order by risk (issue 16): a table of referrals and the order the inbox must show them in.

Within a tier (SMS and verified numbers first), urgent referrals first, then the higher score: minutes
waited plus the bonus of triage.risk_minutes (crisis kind, texts during a crisis hold, a repeat
contact within 7 days). Each card says why it is where it is.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot.casework import cases
from bot.messaging import triage
from bot.messaging.triage import Tier
from bot.storage.models import Referral, Resident


@pytest.mark.parametrize(
    ("crisis_kind", "held_texts", "repeat", "bonus"),
    [
        (None, 0, False, 0),
        ("self_harm", 0, False, 240),
        ("violence", 0, False, 240),
        ("abuse", 2, False, 280),
        ("overdose", 0, False, 120),
        (None, 0, True, 60),
        ("self_harm", 9, True, 240 + 100 + 60),  # texts during a hold count up to five
    ],
)
def test_risk_minutes(crisis_kind, held_texts, repeat, bonus):
    assert triage.risk_minutes(crisis_kind, held_texts, repeat) == bonus


# name: (tier, urgent, crisis kind, texts during the hold, repeat, minutes waited), in the expected order
QUEUE = [
    ("self-harm, 2 texts since", Tier.TRUSTED, True, "self_harm", 2, False, 5),
    ("abuse, waiting longer", Tier.TRUSTED, True, "abuse", 0, False, 30),
    ("self-harm, just in", Tier.TRUSTED, True, "self_harm", 0, False, 1),
    ("overdose, waiting 110 min", Tier.TRUSTED, True, "overdose", 0, False, 110),  # 230 < 240 + 1
    ("overdose, just in", Tier.TRUSTED, True, "overdose", 0, False, 0),
    ("violence hand-off, no crisis kind", Tier.TRUSTED, True, None, 0, False, 50),
    ("food, again within 7 days", Tier.TRUSTED, False, None, 0, True, 20),
    ("housing, waiting 1 h", Tier.TRUSTED, False, None, 0, False, 60),
    ("food, just in", Tier.TRUSTED, False, None, 0, False, 0),
    ("web self-harm, unverified", Tier.WEB, True, "self_harm", 3, False, 90),
    ("web food", Tier.WEB, False, None, 0, False, 200),
    ("crowded web crisis", Tier.CROWDED, True, "self_harm", 0, False, 300),
]


def test_the_queue_follows_the_table(rt, clock):
    shuffled = QUEUE[::2] + QUEUE[1::2]  # not inserted in the expected order
    ids = {}
    with rt.db.transaction() as s:
        for i, (name, tier, urgent, kind, held, repeat, waited) in enumerate(shuffled):
            resident = Resident(phone=f"+1816555{i:04d}", channel="sms", created_at=clock.now())
            s.add(resident)
            s.flush()
            referral = Referral(
                resident_id=resident.id,
                reason=f"crisis:{kind}" if kind else "asked_person",
                urgent=urgent,
                tier=tier,
                crisis_kind=kind,
                held_texts=held,
                repeat=repeat,
                created_at=clock.now() - timedelta(minutes=waited),
            )
            triage.rank(referral)
            s.add(referral)
            s.flush()
            ids[referral.id] = name
    assert [ids[r.id] for r in cases.queue(rt, "open", 0).referrals] == [row[0] for row in QUEUE]


def test_texts_during_a_hold_and_a_repeat_contact_raise_a_referral_through_the_webhook(app, client, rt, clock):
    calm, crisis, again = (Phone(client, f"+181655501{n}") for n in (11, 12, 13))
    again.text("talk to a person")
    with rt.db.transaction() as s:
        s.scalars(select(Referral)).one().status = "closed"
    clock.set(clock.now() + timedelta(days=2))
    calm.text("talk to a person")
    crisis.text("i want to kill myself")
    crisis.text("i am still here")
    crisis.text("nobody cares")
    clock.set(clock.now() + timedelta(minutes=14))
    again.text("talk to a person")
    with rt.db.sessions() as s:
        rows = {r.resident_id: r for r in s.scalars(select(Referral).where(Referral.status != "closed"))}
        by_phone = {p.phone: p.id for p in s.scalars(select(Resident))}
    held = rows[by_phone[crisis.number]]
    assert (held.crisis_kind, held.held_texts, held.urgent) == ("self_harm", 2, True)
    assert rows[by_phone[again.number]].repeat and not rows[by_phone[calm.number]].repeat
    add_caseworker(rt)
    staff = Staff(app.test_client())
    staff.login()
    html = staff.get("/inbox/").get_data(as_text=True)
    order = [int(n) for n in re.findall(r'data-referral="(\d+)"', html)]
    assert order == [held.id, rows[by_phone[again.number]].id, rows[by_phone[calm.number]].id]
    reasons = [re.sub(r"\s+", " ", r).strip() for r in re.findall(r'class="case-line case-reason"[^>]*>(.*?)<', html)]
    assert reasons == ["self-harm · 2 texts since · 14 min", "again within 7 days · just now", "14 min"]


def test_migration_0009_keeps_the_order_and_the_preferences_residents_chose(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, text

    from bot.storage.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0006")
    engine = create_engine(url)
    with engine.begin() as conn:
        for rid, preference in ((1, "any"), (2, "reply_only")):
            conn.execute(
                text(
                    "INSERT INTO residents (id, phone, phone_lookup, channel, consent_texts, contact_preference, "
                    f"created_at) VALUES ({rid}, '+1816555012{rid}', '+1816555012{rid}', 'sms', 1, '{preference}', "
                    "'2026-11-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO referrals (id, resident_id, urgent, tier, reason, status, resource_ids, unread, "
                    f"created_at) VALUES ({rid}, {rid}, 0, 0, 'asked_person', 'new', '[]', 1, '2026-11-0{rid} 00:00')"
                )
            )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, queue_at = created_at, held_texts, repeat FROM referrals ORDER BY id"))
        assert rows.all() == [(1, 1, 0, 0), (2, 1, 0, 0)]
        chosen = conn.execute(text("SELECT id, contact_chosen_at IS NOT NULL FROM residents ORDER BY id")).all()
        assert chosen == [(1, 0), (2, 1)]  # "don't text me" was said by the resident herself
    command.downgrade(alembic_config(url), "0006")
    command.upgrade(alembic_config(url), "head")
    engine.dispose()
