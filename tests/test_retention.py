"""Retention and backup: `purge` blanks old texts and notes and anonymises inactive residents while
every report number stays; `purge --resident` forgets one person at once; `backup` copies a live
SQLite database."""

from __future__ import annotations

import sqlite3
import stat
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from conftest import RESIDENT, T0, Phone
from sqlalchemy import func, select, update
from staff_helpers import fast_argon2, open_referral  # noqa: F401 (autouse fixture)

# The reports' own data set (twelve people, November 2026), so "the same numbers" means theirs.
from test_reports import dataset, people, report_of  # noqa: F401 (pytest fixtures, used by name)

from bot.casework.reports import to_json
from bot.casework.retention import Purged, parse_age, purge_older_than
from bot.cli import main
from bot.storage.models import AuditEvent, ConversationSession, FollowUp, Message, Note, PhoneCode, Referral, Resident

ORIGIN = {"Origin": "http://localhost"}
OTHER = "+18165550199"
HALF_YEAR = timedelta(days=180)


def cli(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env={"DATA_KEY": None, **env})


def count(rt, *columns_and_where) -> int:
    column, *where = columns_and_where
    with rt.db.sessions() as s:
        return s.scalar(select(func.count(column)).where(*where))


def resident(rt, number: str) -> Resident | None:
    with rt.db.sessions() as s:
        return s.scalars(select(Resident).where(Resident.with_phone(number))).first()


def zip_codes(rt) -> list[str | None]:
    with rt.db.sessions() as s:
        return list(s.scalars(select(Resident.zip_code).order_by(Resident.id)))


def add_note(rt, referral_id: int, at, body: str = "Called the landlord.") -> None:
    with rt.db.transaction() as s:
        s.add(Note(referral_id=referral_id, body=body, created_at=at))


# -- purge by age -----------------------------------------------------------------------------------


def test_a_purge_leaves_every_report_number_as_it_was(rt, dataset):  # noqa: F811 (the fixture imported above)
    add_note(rt, 1, T0 - timedelta(days=20))
    before, zips = to_json(report_of(rt)), zip_codes(rt)
    done = purge_older_than(rt.db, T0, timedelta(days=10))
    assert done.residents == 13 and done.messages == count(rt, Message.id) and done.notes == 1
    assert done.follow_ups == 1  # P12's check-in, still pending: nobody is left to text
    assert to_json(report_of(rt)) == before
    assert count(rt, Message.id, Message.body.is_not(None)) == 0
    assert count(rt, Resident.id, Resident.phone.is_not(None) | Resident.phone_lookup.is_not(None)) == 0
    assert zip_codes(rt) == zips


@pytest.fixture
def three(client, clock, rt) -> dict[str, int]:
    """Old texts half a year back from "gone" and "worked" (whose case got a note yesterday), and "new" today."""
    clock.set(T0 - timedelta(days=200))
    gone, worked = Phone(client, "+18165550101"), Phone(client, "+18165550102")
    gone.text("I need food")
    gone.text("64124")
    rid = open_referral(worked, rt)
    add_note(rt, rid, clock.now(), "old note")
    clock.set(T0 - timedelta(days=1))
    add_note(rt, rid, clock.now(), "recent note")
    clock.set(T0)
    Phone(client, RESIDENT).text("hi")
    with rt.db.transaction() as s:
        s.add(FollowUp(resident_id=resident(rt, "+18165550101").id, template="checkin", due_at=T0 + timedelta(days=1)))
    return {
        name: resident(rt, number).id
        for name, number in (("gone", "+18165550101"), ("worked", "+18165550102"), ("new", RESIDENT))
    }


def test_purge_blanks_old_texts_and_notes_and_anonymises_only_the_inactive(rt, three):
    old_messages = count(rt, Message.id, Message.created_at < T0 - HALF_YEAR)
    done = purge_older_than(rt.db, T0, HALF_YEAR)
    assert done == Purged(messages=old_messages, notes=1, sessions=2, follow_ups=1, residents=1)
    with rt.db.sessions() as s:
        gone, worked, new = (s.get(Resident, three[k]) for k in ("gone", "worked", "new"))
        assert (gone.phone, gone.phone_lookup, gone.chat_key, gone.anonymized_at) == (None, None, None, T0)
        assert (gone.zip_code, gone.language) == ("64124", "en")
        assert worked.phone == "+18165550102" and worked.anonymized_at is None  # a caseworker note yesterday
        assert new.phone == RESIDENT
        assert [
            m.body for m in s.scalars(select(Message).where(Message.resident_id == new.id, Message.direction == "in"))
        ] == ["hi"]
        assert sorted(n.body or "-" for n in s.scalars(select(Note))) == ["-", "recent note"]
        assert s.scalar(select(func.count(ConversationSession.id))) == 1
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purged")).one()
    assert event.detail == {"scope": "older_than", "days": 180, **done.as_dict()}
    assert purge_older_than(rt.db, T0, HALF_YEAR) == Purged(0, 0, 0, 0, 0)  # nothing left to do


def test_a_dry_run_counts_what_a_purge_would_do_and_changes_nothing(rt, three):
    counted = purge_older_than(rt.db, T0, HALF_YEAR, dry_run=True)
    assert resident(rt, "+18165550101") is not None
    assert count(rt, AuditEvent.id, AuditEvent.action == "retention.purged") == 0
    assert purge_older_than(rt.db, T0, HALF_YEAR) == counted


def test_an_anonymised_number_texting_again_starts_afresh(rt, three, phone):
    purge_older_than(rt.db, T0, HALF_YEAR)
    Phone(phone.client, "+18165550101").text("hi")
    fresh = resident(rt, "+18165550101")
    assert fresh is not None and fresh.id != three["gone"]


# -- one person, at once --------------------------------------------------------------------------


@pytest.mark.parametrize("data_key", [None, "T3aXiwQMrCJiqYXJddkRgZ60y-Ja-V8tQKjJiYOhKAY="], ids=["plain", "encrypted"])
def test_purge_resident_forgets_one_person_at_once_with_their_web_chat(env, app, client, rt, phone, monkeypatch):
    rid = open_referral(phone, rt)
    phone.text("my boyfriend took my phone")
    add_note(rt, rid, T0)
    monkeypatch.setattr("bot.messaging.verify.secrets.randbelow", lambda _n: 246810)  # the code the phone got
    chat = app.test_client()  # the same person, from the web chat, proved the same number
    chat.post("/chat/messages", json={"text": "I need food"}, headers=ORIGIN)
    chat.post("/chat/phone", json={"phone": "816-555-0123"}, headers=ORIGIN)
    chat.post("/chat/phone", json={"phone": "816-555-0123", "code": "246810", "consent": True}, headers=ORIGIN)
    stranger = app.test_client()  # someone else typed the number and never had the code
    stranger.post("/chat/messages", json={"text": "hi"}, headers=ORIGIN)
    stranger.post("/chat/phone", json={"phone": "816-555-0123"}, headers=ORIGIN)
    Phone(client, OTHER).text("hi")
    person = resident(rt, RESIDENT).id
    with rt.db.transaction() as s:  # a provider's error text on one of their texts
        s.execute(
            update(Message)
            .where(Message.resident_id == person, Message.direction == "out")
            .values(error_code=30003, error_message="Unreachable destination handset [number]")
        )

    result = cli(env, "purge", "--resident", "(816) 555-0123", "--dry-run")
    assert result.exit_code == 0 and result.output.startswith("dry run, would purge:"), result.output
    assert resident(rt, RESIDENT) is not None
    result = cli(env, "purge", "--resident", "(816) 555-0123")
    assert result.exit_code == 0, result.output
    assert "2 residents" in result.output and "1 notes" in result.output

    assert resident(rt, RESIDENT) is None
    with rt.db.sessions() as s:
        stranger_id = s.scalars(select(Resident.id).where(Resident.chat_key.is_not(None))).one()
    others = (resident(rt, OTHER).id, stranger_id)
    assert count(rt, Message.id, Message.body.is_not(None), Message.resident_id.not_in(others)) == 0
    assert count(rt, Message.id, Message.error_message.is_not(None)) == 0
    assert count(rt, PhoneCode.id) == 0  # the person's code and the stranger's code for their number
    assert count(rt, Message.id, Message.body.is_not(None), Message.resident_id == resident(rt, OTHER).id) > 0
    assert count(rt, Note.id, Note.body.is_not(None)) == 0
    assert count(rt, Referral.id) == 1  # the case stays, for the counts
    with rt.db.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "retention.purged")).one()
    assert event.resident_id == person and event.detail["scope"] == "resident"
    result = cli(env, "purge", "--resident", RESIDENT)
    assert result.exit_code == 1 and "no resident has that number" in result.output


# -- the command ------------------------------------------------------------------------------------


def test_purge_older_than_from_the_command_line(env, client, clock, rt):
    clock.set(T0 - timedelta(days=400))  # the command runs on the real clock
    Phone(client, OTHER).text("hi")
    result = cli(env, "purge", "--older-than", "26w", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run, would purge:" in result.output and "1 residents" in result.output
    result = cli(env, "purge", "--older-than", "180d")
    assert result.exit_code == 0 and result.output.startswith("purged:") and "1 residents" in result.output
    assert resident(rt, OTHER) is None


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give either --older-than AGE or --resident PHONE"),
        (["--older-than", "180d", "--resident", RESIDENT], "give either"),
        (["--older-than", "6 months"], "not an age like 180d"),
        (["--older-than", "0d"], "not an age like 180d"),
        (["--resident", "call me"], "not a phone number"),
    ],
)
def test_purge_refuses_unclear_orders(env, args, message):
    result = cli(env, "purge", *args)
    assert result.exit_code == 2 and message in result.output


def test_parse_age():
    assert parse_age("180d") == timedelta(days=180) and parse_age(" 26W ") == timedelta(weeks=26)


# -- backup ------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_only(is_postgres):
    if is_postgres:
        pytest.skip("backup copies SQLite; PostgreSQL uses pg_dump")


def test_backup_copies_a_database_that_is_being_written(sqlite_only, env, rt, tmp_path):
    with rt.db.transaction() as s:
        s.add(Resident(phone=RESIDENT, channel="sms", created_at=T0))
    person = resident(rt, RESIDENT).id
    stop, written = threading.Event(), [0]

    def writer() -> None:
        while not stop.is_set():
            with rt.db.transaction() as s:
                s.add_all(
                    Message(
                        resident_id=person,
                        direction="in",
                        status="received",
                        body="x" * 500,
                        created_at=T0,
                        updated_at=T0,
                    )
                    for _ in range(50)
                )
            written[0] += 50

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = []
        for n in range(3):
            while written[0] < 500 * (n + 1):  # let the writer get well into its work
                stop.wait(0.01)
            copies.append(tmp_path / f"copy{n}.db")
            result = cli(env, "backup", str(copies[-1]))
            assert result.exit_code == 0 and "integrity ok" in result.output, result.output
    finally:
        stop.set()
        thread.join()
    sizes = []
    for copy in copies:
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            sizes.append(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    assert sizes == sorted(sizes) and sizes[0] >= 500 and all(n % 50 == 0 for n in sizes)  # whole transactions
    assert not list(tmp_path.glob(".*partial"))


def test_backup_replaces_an_older_copy_and_refuses_a_missing_folder(sqlite_only, env, rt, tmp_path):
    target = tmp_path / "copy.db"
    target.write_text("yesterday's")
    assert cli(env, "backup", str(target)).exit_code == 0
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    result = cli(env, "backup", str(tmp_path / "nowhere" / "copy.db"))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_backup_of_postgresql_points_to_pg_dump(env, tmp_path):
    result = cli(
        {**env, "DATABASE_URL": "postgresql+psycopg://peaceline@db.internal/peaceline"},
        "backup",
        str(tmp_path / "copy.db"),
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "pg_dump -Fc" in result.output
    assert not (tmp_path / "copy.db").exists()
