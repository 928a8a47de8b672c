"""Migration 0005 on a database seeded with what the old /chat/phone left behind (its docstring has the rule).

Seeded at revision 0003, upgraded through 0005 (to head, for the models), on SQLite and (with
TEST_DATABASE_URL) PostgreSQL:
- "tangled": a web visitor gave a number, then texts from that number landed on the visitor's record;
- "typed": a web visitor gave a number and nothing else happened;
- "linked": a web visitor typed the number of someone who had texted before (only an audit event says so);
- "purged": a tangled record whose number a purge already removed;
- "texter": a resident who only ever texted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Database, scratch_database
from bot.storage.migrate import alembic_config
from bot.storage.models import AuditEvent, FollowUp, Message, Referral, Resident

AT = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
TANGLED, TYPED, TEXTER = "+18165550123", "+18165550177", "+18165550199"
KEY = {"tangled": "k-tangled", "typed": "k-typed", "linked": "k-linked", "purged": "k-purged"}


@pytest.fixture
def old_database(tmp_path) -> Iterator[str]:
    admin = os.environ.get("TEST_DATABASE_URL")
    if not admin:
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_database(admin, "peaceline_m5") as url:
        yield url


def when(minutes: int) -> datetime:
    return AT + timedelta(minutes=minutes)


def seed(url: str) -> dict[str, int]:
    """The bad shapes, written as the old code wrote them (raw rows at revision 0003)."""
    command.upgrade(alembic_config(url), "0003")
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    ids: dict[str, int] = {}
    person = {"consent_texts": True, "created_at": when(0)}
    with engine.begin() as conn:

        def add(table: str, **values) -> int:
            return conn.execute(t[table].insert().values(**values).returning(t[table].c.id)).scalar_one()

        ids["tangled"] = add(
            "residents",
            channel="web",
            chat_key=KEY["tangled"],
            phone=TANGLED,
            phone_lookup=TANGLED,
            language="es",
            timezone="America/Chicago",
            opted_out_at=when(30),
            undeliverable_reason="30003: unreachable handset",
            **person,
        )
        ids["typed"] = add("residents", channel="web", chat_key=KEY["typed"], phone=TYPED, phone_lookup=TYPED, **person)
        ids["texter"] = add("residents", channel="sms", phone=TEXTER, phone_lookup=TEXTER, **person)
        ids["linked"] = add("residents", channel="web", chat_key=KEY["linked"], **person)
        ids["purged"] = add("residents", channel="web", chat_key=KEY["purged"], anonymized_at=when(40), **person)
        add(
            "audit_events",
            at=when(1),
            action="consent.recorded",
            resident_id=ids["linked"],
            detail={"channel": "web", "phone_resident_id": ids["texter"]},
        )
        message = {"status": "received", "segments": 1, "num_media": 0}
        for who, channel, minutes, body in (
            ("tangled", "web", 1, "I need food"),
            ("tangled", "sms", 5, "hi"),
            ("tangled", "sms", 9, "he took my phone"),
            ("typed", "web", 1, "hola"),
            ("purged", "sms", 3, None),
            ("texter", "sms", 2, "hi"),
        ):
            add(
                "messages",
                resident_id=ids[who],
                direction="in",
                channel=channel,
                kind="inbound",
                body=body,
                created_at=when(minutes),
                updated_at=when(minutes),
                **message,
            )
        ids["referral"] = add(
            "referrals",
            resident_id=ids["tangled"],
            reason="crisis:violence",
            urgent=True,
            status="new",
            resource_ids=[],
            unread=True,
            created_at=when(9),
        )
        ids["pending"] = add(
            "follow_ups",
            resident_id=ids["tangled"],
            referral_id=ids["referral"],
            template="checkin",
            due_at=when(3000),
            status="pending",
            attempts=0,
            created_at=when(9),
        )
        ids["sent"] = add(
            "follow_ups",
            resident_id=ids["tangled"],
            referral_id=ids["referral"],
            template="checkin",
            due_at=when(10),
            status="sent",
            attempts=1,
            created_at=when(9),
        )
    engine.dispose()
    return ids


def test_0005_untangles_web_records_that_hold_a_number_or_carry_texts(old_database):
    ids = seed(old_database)
    command.upgrade(alembic_config(old_database), "head")  # through 0005, and the models need all of them
    db = Database(old_database)
    try:
        with db.sessions() as s:
            row = {name: s.get(Resident, ids[name]) for name in ("tangled", "typed", "linked", "purged", "texter")}
            moved = s.scalars(select_number(TANGLED)).one()
            texts = {
                r.id: [
                    m.body
                    for m in s.scalars(sa.select(Message).where(Message.resident_id == r.id).order_by(Message.id))
                ]
                for r in [*row.values(), moved]
            }
            follow_ups = {f.id: f.resident_id for f in s.scalars(sa.select(FollowUp))}
            referral = s.get(Referral, ids["referral"])
            event = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "migration.untangled")).one()

        # 1. tangled: the browser's key is revoked, the number moves to a new SMS record of its own
        assert (row["tangled"].chat_key, row["tangled"].phone, row["tangled"].phone_lookup) == (None, None, None)
        assert (moved.channel, moved.phone, moved.chat_key) == ("sms", TANGLED, None)
        assert (moved.opted_out_at, moved.language, moved.timezone) == (when(30), "es", "America/Chicago")
        assert moved.undeliverable_reason == "30003: unreachable handset" and moved.last_seen_at == when(9)
        assert texts[ids["tangled"]] == ["I need food", "hi", "he took my phone"] and texts[moved.id] == []
        assert referral.resident_id == ids["tangled"]  # messages and cases stay, for the caseworkers
        assert follow_ups == {ids["pending"]: moved.id, ids["sent"]: ids["tangled"]}
        assert event.resident_id == ids["tangled"] and event.detail == {"sms_resident_id": moved.id}
        # 2. typed: the unproven number is gone; the browser keeps its conversation
        assert (row["typed"].chat_key, row["typed"].phone, row["typed"].phone_lookup) == (KEY["typed"], None, None)
        assert texts[ids["typed"]] == ["hola"]
        # 3. linked only in an audit event: nothing to undo, and no link made of it
        assert (row["linked"].chat_key, row["linked"].linked_resident_id) == (KEY["linked"], None)
        # a purged tangled record loses its key too; the texter is untouched
        assert row["purged"].chat_key is None
        assert (row["texter"].phone, row["texter"].channel) == (TEXTER, "sms")
        assert all(r.linked_resident_id is None and r.phone_verified_at is None for r in row.values())

        # From now on the database itself refuses a number on a web record.
        with pytest.raises(IntegrityError), db.transaction() as s:
            s.add(Resident(channel="web", chat_key="k-new", phone=TYPED, created_at=AT))
    finally:
        db.dispose()


def test_0005_downgrades_to_0003_and_upgrades_again(old_database):
    seed(old_database)
    cfg = alembic_config(old_database)
    command.upgrade(cfg, "0005")
    command.downgrade(cfg, "0003")
    command.upgrade(cfg, "0005")
    engine = sa.create_engine(old_database)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM phone_codes")).scalar() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 6
    finally:
        engine.dispose()


def select_number(e164: str):
    return sa.select(Resident).where(Resident.with_phone(e164))
