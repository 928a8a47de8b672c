"""Encryption at rest (DATA_KEY): ciphertext in the tables, plain text in the app, keyed phone lookups,
key rotation, and a wrong key stopping the start. The smoke tests run with and without a key."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import RESIDENT, T0, Outbox, Phone
from sqlalchemy import create_engine, select, text
from staff_helpers import Staff, add_caseworker, fast_argon2, open_referral  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.messaging.dispatch import dispatch_due
from bot.storage import crypto
from bot.storage.crypto import UnreadableValue
from bot.storage.migrate import alembic_config
from bot.storage.models import AuditEvent, FollowUp, Message, Note, Resident

# Test keys, fixed so that every xdist worker collects the same test ids.
NEW, OLD = "p0J6Ckp9dQvQfDcCCrnZI8ZZ7Gv2FewEHdcHASQF6T0=", "JZEI-4e7AQGKP7z0i3FCKDk41ZQLO2aFdkaBHofAcF8="
ORIGIN = {"Origin": "http://localhost"}
SECRET = "my landlord changed the locks and he has a gun"
NOTE = "Called the landlord about the locks."
ANA = "+18165550141"


@pytest.fixture
def data_key() -> str | None:
    return NEW


@pytest.fixture
def sender(outbox):
    return outbox  # keeps the decrypted number that left


def raw(rt, sql: str) -> list:
    """What is really in the table, read past the column types."""
    with rt.db.engine.connect() as conn:
        return [row[0] for row in conn.execute(text(sql))]


def cli(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env={"DATA_KEY": None, **env})


def staff_login(client, rt) -> Staff:
    add_caseworker(rt, phone=ANA)
    staff = Staff(client)
    assert staff.login().status_code == 302
    return staff


# -- smoke: the app end to end, with and without a key ----------------------------------------------

smoke = pytest.mark.parametrize("data_key", [None, NEW], ids=["plain", "encrypted"])


@smoke
def test_a_text_is_answered_and_the_follow_up_reaches_the_same_number(rt, phone, outbox):
    assert phone.text("hi")
    assert phone.text("food")
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident)).one()
        assert resident.phone == RESIDENT
        assert [m.body for m in s.scalars(select(Message).where(Message.direction == "in"))] == ["hi", "food"]
        s.add(FollowUp(resident_id=resident.id, template="checkin", due_at=T0, created_at=T0))
        s.commit()
    assert [d.status for d in dispatch_due(rt)] == ["sent"]
    assert [to for to, _ in outbox.sent] == [RESIDENT]


@smoke
def test_the_inbox_shows_the_thread_the_number_and_the_notes(client, rt, phone):
    staff = staff_login(client, rt)
    rid = open_referral(phone, rt, SECRET)
    staff.post(f"/inbox/referrals/{rid}/notes", body=NOTE)
    thread = staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    assert SECRET in thread and NOTE in thread and RESIDENT in thread
    assert "+1816•••0123" in staff.get("/inbox/").get_data(as_text=True)


@smoke
def test_a_notice_goes_once_to_the_caseworker_when_the_resident_asks_twice(client, rt, phone, outbox):
    staff_login(client, rt)
    for _ in range(2):
        phone.send("talk to a person").close()  # notices leave once the response is closed
    assert len([to for to, _ in outbox.sent if to == ANA]) == 1


@smoke
def test_a_web_visitor_who_proves_the_number_is_linked_to_the_resident_who_texts_from_it(
    client, rt, phone, outbox, data_key
):
    phone.text("hi")
    client.post("/chat/messages", json={"text": "I need food"}, headers=ORIGIN)
    assert client.post("/chat/phone", json={"phone": "816-555-0123"}, headers=ORIGIN).status_code == 200
    code = re.search(r"\d{6}", outbox.to(RESIDENT)[-1]).group(0)  # the decrypted number got the code
    assert (
        client.post(
            "/chat/phone", json={"phone": "816-555-0123", "code": code, "consent": True}, headers=ORIGIN
        ).status_code
        == 200
    )
    with rt.db.sessions() as s:
        sms = s.scalars(select(Resident).where(Resident.channel == "sms")).one()
        web = s.scalars(select(Resident).where(Resident.channel == "web")).one()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "consent.recorded")).one()
    assert web.linked_resident_id == sms.id and web.phone is None
    assert event.detail == {"channel": "web", "linked_resident_id": sms.id}
    if data_key:  # the code's row names the number by its keyed lookup only
        assert raw(rt, "SELECT phone_lookup FROM phone_codes") == [crypto.phone_lookup(RESIDENT)] != [RESIDENT]


@smoke
def test_a_body_that_looks_encrypted_reads_back_as_sent(rt, phone):
    phone.text("enc1:gAAAA not really")
    phone.text("raw1:neither")
    with rt.db.sessions() as s:
        bodies = list(s.scalars(select(Message.body).where(Message.direction == "in").order_by(Message.id)))
    assert bodies == ["enc1:gAAAA not really", "raw1:neither"]


# -- with a key: what the tables hold -------------------------------------------------------------


def test_the_tables_hold_no_plain_body_note_or_number(client, rt, phone):
    staff = staff_login(client, rt)
    rid = open_referral(phone, rt, SECRET)
    staff.post(f"/inbox/referrals/{rid}/notes", body=NOTE)
    stored = (
        raw(rt, "SELECT body FROM messages")
        + raw(rt, "SELECT body FROM notes")
        + raw(rt, "SELECT phone FROM residents")
    )
    # Each value is one Fernet token and nothing else (a plain word inside random base64 would be chance).
    assert len(stored) >= 4 and all(re.fullmatch(r"enc1:gAAAAA[A-Za-z0-9_-]+=*", value) for value in stored)
    lookups = " ".join(raw(rt, "SELECT phone_lookup FROM residents"))
    for plain in ("landlord", "gun", "locks", "5550123", "talk to a person"):
        assert plain not in lookups
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in raw(rt, "SELECT phone_lookup FROM residents"))


def test_the_lookup_depends_on_the_key_and_older_forms_stay_findable(rt, phone):
    phone.text("hi")
    [lookup] = raw(rt, "SELECT phone_lookup FROM residents")
    assert lookup == crypto.phone_lookup(RESIDENT) != crypto.phone_lookup("+18165550124")
    crypto.configure(f"{OLD},{NEW}")
    assert crypto.phone_lookups(RESIDENT)[1:] == [lookup, RESIDENT]  # NEW's, then the bare number


def test_a_tampered_value_fails_to_read_instead_of_reading_wrong(rt, phone):
    phone.text("hi")
    with rt.db.engine.begin() as conn:
        conn.execute(text("UPDATE messages SET body = substr(body, 1, length(body) - 2) || 'AA'"))
    with rt.db.sessions() as s, pytest.raises(UnreadableValue, match="DATA_KEY"):
        s.scalars(select(Message.body)).first()


def test_an_encrypted_column_refuses_comparison_in_sql():
    with pytest.raises(TypeError, match="phone_lookup"):
        select(Resident).where(Resident.phone == RESIDENT)
    with pytest.raises(TypeError):
        select(Message).where(Message.body.contains("gun"))
    assert "IS NULL" in str(select(Note).where(Note.body.is_(None)))


# -- setting a key on a database that has none, and rotating ----------------------------------------


@pytest.mark.parametrize("data_key", [None])
def test_a_key_set_later_still_finds_old_residents_and_rotate_key_encrypts_them(env, clock, outbox, rt, phone):
    phone.text("hi")  # written without a key
    keyed = create_app(load_settings({**env, "DATA_KEY": NEW}), clock=clock, sender=outbox)
    keyed_rt = keyed.extensions["peaceline"]
    try:
        Phone(keyed.test_client()).text("food")
        with keyed_rt.db.sessions() as s:
            assert s.scalar(select(Resident.id).where(Resident.with_phone(RESIDENT))) is not None
            assert len(s.scalars(select(Resident)).all()) == 1  # found by the bare number, not created twice
            assert list(s.scalars(select(Message.body).where(Message.direction == "in"))) == ["hi", "food"]
        result = cli({**env, "DATA_KEY": NEW}, "rotate-key")
        assert result.exit_code == 0, result.output
        assert "residents.phone: 0 re-encrypted, 1 encrypted for the first time, 1 lookups recomputed" in result.output
        assert all(v.startswith("enc1:") for v in raw(keyed_rt, "SELECT body FROM messages"))
        assert raw(keyed_rt, "SELECT phone_lookup FROM residents") == [crypto.phone_lookup(RESIDENT)]
    finally:
        keyed_rt.db.dispose()


@pytest.mark.parametrize("data_key", [OLD])
def test_rotate_key_moves_everything_to_the_new_key(env, rt, phone, client, clock):
    staff = staff_login(client, rt)
    rid = open_referral(phone, rt, SECRET)
    staff.post(f"/inbox/referrals/{rid}/notes", body=NOTE)
    messages = len(raw(rt, "SELECT id FROM messages"))

    rotated = {**env, "DATA_KEY": f"{NEW},{OLD}"}
    for _ in range(2):  # idempotent: a second run finds everything under NEW and rewrites it the same way
        result = cli(rotated, "rotate-key")
        assert result.exit_code == 0, result.output
        assert f"messages.body: {messages} re-encrypted, 0 encrypted for the first time" in result.output
        assert "notes.body: 1 re-encrypted" in result.output
        assert "residents.phone: 1 re-encrypted, 0 encrypted for the first time, 1 lookups recomputed" in result.output

    [stored_note] = raw(rt, "SELECT body FROM notes")
    [lookup] = raw(rt, "SELECT phone_lookup FROM residents")
    crypto.configure(OLD)
    with pytest.raises(UnreadableValue):
        crypto.decode(stored_note)
    assert lookup not in crypto.phone_lookups(RESIDENT)
    crypto.configure(NEW)
    assert crypto.decode(stored_note) == NOTE and lookup == crypto.phone_lookup(RESIDENT)
    on_new = create_app(load_settings({**env, "DATA_KEY": NEW}), clock=clock, sender=Outbox())
    try:  # the line runs on NEW alone: the resident's next text lands in the same thread
        Phone(on_new.test_client()).text("thanks")
        assert len(raw(on_new.extensions["peaceline"], "SELECT id FROM residents")) == 1
    finally:
        on_new.extensions["peaceline"].db.dispose()


def test_rotate_key_without_a_key_says_so(env):
    result = cli({**env, "DATA_KEY": None}, "rotate-key")
    assert result.exit_code == 1 and "DATA_KEY is not set" in result.output


# -- a wrong key stops the start, in one line -------------------------------------------------------


@pytest.mark.parametrize("bad", ["not-a-key", f"{NEW},", f"{NEW},{NEW[:-2]}"])
def test_a_malformed_key_stops_the_app_with_one_line_naming_it(env, bad):
    with pytest.raises(ConfigError) as caught:
        create_app(load_settings({**env, "DATA_KEY": bad}))
    message = str(caught.value)
    assert message.startswith("DATA_KEY") and "\n" not in message and NEW not in message
    result = cli({**env, "DATA_KEY": bad}, "send-due")
    assert result.exit_code == 1 and "DATA_KEY" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("other", [OLD, None], ids=["another key", "no key"])
def test_a_key_that_cannot_read_the_data_stops_the_start_with_one_line(env, rt, phone, other):
    phone.text("hi")  # stored under NEW
    result = cli({**env, "DATA_KEY": other}, "send-due")
    assert result.exit_code == 1, result.output
    assert "DATA_KEY" in result.output and len(result.output.strip().splitlines()) == 1


# -- the migration -----------------------------------------------------------------------------------


def test_migration_0002_keeps_every_row_and_fills_the_lookup(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO residents (id, phone, channel, consent_texts, created_at) "
                "VALUES (1, '+18165550123', 'sms', 1, '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO messages (resident_id, direction, channel, kind, body, status, segments, "
                "num_media, created_at, updated_at) VALUES (1, 'in', 'sms', 'inbound', 'hi', 'received', "
                "1, 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
            )
        )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as conn:
        # batch mode rebuilt residents; foreign keys were off, so no cascade emptied the messages
        assert conn.execute(text("SELECT body FROM messages")).scalars().all() == ["hi"]
        assert conn.execute(text("SELECT phone, phone_lookup FROM residents")).all() == [(RESIDENT, RESIDENT)]
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    engine.dispose()


def test_rotation_works_in_batches(env, rt, phone):
    from bot.casework.retention import rotate_key

    for n in range(3):
        phone.text(f"message {n}")
    crypto.configure(f"{OLD},{NEW}")
    counts = rotate_key(rt.db, batch=2)
    assert counts["messages.body"]["re-encrypted"] == len(raw(rt, "SELECT id FROM messages"))
    crypto.configure(OLD)
    assert {crypto.decode(v) for v in raw(rt, "SELECT body FROM messages WHERE direction = 'in'")} == {
        "message 0",
        "message 1",
        "message 2",
    }
