"""An ordinary text costs four statements and the commit; everything a turn must keep still holds.

Statements are counted at the DB-API cursor (SQLAlchemy's before_cursor_execute sees every one, the
plain driver's too); BEGIN and COMMIT are not counted.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from conftest import Phone
from sqlalchemy import delete, event, select, text
from sqlalchemy.exc import DBAPIError
from staff_helpers import add_caseworker, fast_argon2, open_referral  # noqa: F401 (autouse fixture)

from bot.casework import cases
from bot.messaging.service import Service
from bot.storage import turns
from bot.storage.models import AuditEvent, ConversationSession, Message, Referral, Resident

TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK")


@contextmanager
def statements(rt):
    """The statements run inside the block, as SQL text (BEGIN and COMMIT left out)."""
    seen: list[str] = []

    def count(_conn, _cursor, sql, _params, _context, _many):
        if not sql.lstrip().upper().startswith(TRANSACTION):
            seen.append(sql)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)


@pytest.fixture
def talking(rt, phone):
    """A resident part way into the menu, with a caseworker on duty."""
    add_caseworker(rt)
    assert phone.text("hi")
    assert phone.text("1")  # English
    return phone


def test_an_ordinary_text_takes_four_statements_and_the_commit(rt, talking):
    with statements(rt) as seen:
        replies = talking.text("what")  # not understood: asked again, no effect
    assert replies
    assert len(seen) == 4, "\n".join(seen)
    with rt.db.sessions() as s:
        stored = s.scalars(select(Message).order_by(Message.id.desc()).limit(len(replies) + 1)).all()[::-1]
    assert [m.direction for m in stored] == ["in"] + ["out"] * len(replies)
    assert stored[0].body == "what"
    assert [m.body for m in stored[1:]] == replies
    assert all(m.in_reply_to_id == stored[0].id for m in stored[1:])


def test_a_profile_answer_adds_one_update_of_the_resident(rt, talking):
    with statements(rt) as seen:
        assert talking.text("español")
    assert len(seen) == 5, "\n".join(seen)
    with rt.db.sessions() as s:
        assert s.scalar(select(Resident.language)) == "es"


def test_a_repeated_message_sid_is_answered_with_the_first_answer(rt, talking):
    params = talking.payload("what")
    first = talking.post(params).get_data(as_text=True)
    with statements(rt) as seen:
        again = talking.post(params).get_data(as_text=True)
    assert again == first
    assert len(seen) == 3, "\n".join(seen)  # lock, read, the first answer's replies
    with rt.db.sessions() as s:
        assert s.scalars(select(Message.body).where(Message.direction == "in")).all().count("what") == 1


def test_a_referral_closed_in_the_inbox_is_no_longer_open_to_the_next_text(rt, talking, clock):
    referral_id = open_referral(talking, rt)
    with rt.db.sessions() as s:
        referral = s.get(Referral, referral_id)
        assert s.scalar(select(ConversationSession.open_referral_id)) == referral.id
    cases.close(rt, referral.id, me=1, outcome="got_help")
    assert talking.text("MENU")  # the slow path reads the referral again and clears the pointer
    with rt.db.sessions() as s:
        assert s.scalar(select(ConversationSession.open_referral_id)) is None
    cases.reopen(rt, referral.id, me=1)
    with rt.db.sessions() as s:
        assert s.scalar(select(ConversationSession.open_referral_id)) == referral.id
    clock.set(clock.now() + timedelta(minutes=5))
    with statements(rt) as seen:
        talking.text("what")
    assert len(seen) == 4, "\n".join(seen)
    with rt.db.sessions() as s:
        inbound = s.scalar(select(Message).where(Message.direction == "in").order_by(Message.id.desc()))
        assert inbound.referral_id == referral.id


def test_the_loop_guard_counts_on_the_conversation_row(rt, talking, settings):
    answered = [bool(talking.text(f"what {i}")) for i in range(settings.loop_guard_per_minute + 2)]
    assert answered[0] and not answered[-1]
    with rt.db.sessions() as s:
        assert s.scalar(select(Resident.quiet_until)) is not None


def test_a_first_text_takes_five_statements(rt, phone):
    add_caseworker(rt)
    with statements(rt) as seen:
        assert phone.text("hi")
    # lock (insert) the resident, read, store the messages, note when they texted, make the conversation
    assert len(seen) == 5, "\n".join(seen)
    with rt.db.sessions() as s:
        resident = s.scalar(select(Resident))
        assert resident.last_seen_at is not None
        assert s.scalar(select(ConversationSession.resident_id)) == resident.id


def test_a_conversation_row_lost_with_a_referral_open_is_made_again_pointing_at_it(rt, talking):
    referral_id = open_referral(talking, rt)
    with rt.db.transaction() as s:
        s.execute(delete(ConversationSession))
    assert talking.text("MENU")
    with rt.db.sessions() as s:
        assert s.scalar(select(ConversationSession.open_referral_id)) == referral_id


# -- a referral opened or raised on the Core path stores what the ORM path stores -----------------------

# What the fast path opens or raises: asked for a person, a need's hand-off, a crisis and the texts held
# in its hold, another need on top of an open referral. Each is texted by two residents: one through the
# Core path, one with it turned off (the ORM path alone); their replies and rows must be the same.
SCRIPTS = {
    "asks for a person": ["hi", "1", "talk to a person"],
    "a crisis, then texts in the hold": ["I want to kill myself", "please", "i cant do this"],
    "a need named outright": ["i got evicted", "64124", "yes", "no", "yes"],
    "a person, then another need": ["hi", "1", "talk to a person", "MENU", "I need food", "64124", "no", "no"],
    "someone is hurting me": ["he hit me again", "yes"],
}
SAME = ("status", "category", "reason", "zip_code", "urgent", "tier", "resource_ids", "unread", "crisis_kind")
SAME += ("notified_at", "escalation_due_at", "bot_resumed_at", "queue_at", "held_texts", "repeat")


def _texted(client, number: str, texts: list[str]) -> list[list[str]]:
    phone = Phone(client, number)
    return [phone.text(text) for text in texts]


def _stored(rt, number: str) -> dict:
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident)).all()
        resident = next(r for r in resident if r.phone == number)
        referrals = s.scalars(select(Referral).where(Referral.resident_id == resident.id).order_by(Referral.id)).all()
        audits = s.scalars(select(AuditEvent).where(AuditEvent.resident_id == resident.id).order_by(AuditEvent.id))
        inbound = s.scalars(
            select(Message.referral_id).where(Message.resident_id == resident.id, Message.direction == "in")
        )
        pointer = s.scalar(
            select(ConversationSession.open_referral_id).where(ConversationSession.resident_id == resident.id)
        )
        ids = {r.id: i for i, r in enumerate(referrals)}  # each resident's referrals by their order
        return {
            "referrals": [{name: getattr(r, name) for name in SAME} for r in referrals],
            "audits": [(a.action, ids.get(a.referral_id), a.detail) for a in audits],
            "inbound": [ids.get(i) for i in inbound],
            "pointer": ids.get(pointer),
            "preference": (resident.contact_preference, resident.contact_chosen_at),
        }


@pytest.mark.parametrize("on_duty", [True, False], ids=["on duty", "nobody on duty"])
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_a_referral_opened_or_raised_on_the_core_path_is_stored_as_the_orm_path_stores_it(
    rt, client, monkeypatch, name, on_duty
):
    if on_duty:
        add_caseworker(rt)
    stored_in_core = []
    for store in ("open_case", "store_case"):
        real = getattr(turns, store)
        monkeypatch.setattr(turns, store, lambda *a, real=real, **kw: stored_in_core.append(a) or real(*a, **kw))
    core = _texted(client, "+18165550111", SCRIPTS[name])
    assert stored_in_core, "the Core path opened or raised nothing: this would compare the ORM path with itself"
    with monkeypatch.context() as m:
        m.setattr(Service, "_fast_turn", lambda *_args, **_kw: None)
        orm = _texted(client, "+18165550122", SCRIPTS[name])
    assert core == orm
    fast, slow = _stored(rt, "+18165550111"), _stored(rt, "+18165550122")
    assert fast["referrals"], "the script opens a referral"
    assert fast == slow


def test_opening_a_referral_takes_eight_statements_not_the_orm_paths_many(rt, talking):
    with statements(rt) as seen:
        assert talking.text("talk to a person")
    # lock, read, earlier referral?, the referral, its audit row, the messages, the state, the pointer
    assert len(seen) == 8, "\n".join(seen)
    with rt.db.sessions() as s:
        referral = s.scalar(select(Referral))
        assert s.scalar(select(ConversationSession.open_referral_id)) == referral.id
        assert referral.notified_at is not None  # a caseworker is on duty


def test_a_statement_failing_on_the_cursor_raises_sqlalchemys_error(rt, talking):
    """The statements run on the DB-API cursor: a driver error still comes out as SQLAlchemy's (an
    OperationalError is what answers Twilio 503 when the database is away), naming the statement."""
    with rt.db.transaction() as s:
        s.execute(text("ALTER TABLE conversation_sessions RENAME TO conversation_sessions_away"))
    try:
        with pytest.raises(DBAPIError) as raised, rt.db.connection() as conn:
            turns.lock_and_read(conn, "sms", talking.number, "SM" + "0" * 32, timedelta(days=4), rt.clock.now())
        assert "conversation_sessions" in str(raised.value)
    finally:
        with rt.db.transaction() as s:
            s.execute(text("ALTER TABLE conversation_sessions_away RENAME TO conversation_sessions"))
    assert talking.text("what"), "the line answers again"
