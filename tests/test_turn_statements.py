"""An ordinary text costs four statements and the commit; everything a turn must keep still holds.

Statements are counted at the DB-API cursor (SQLAlchemy's before_cursor_execute sees every one, the
plain driver's too); BEGIN and COMMIT are not counted.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import delete, event, select
from staff_helpers import add_caseworker, fast_argon2, open_referral  # noqa: F401 (autouse fixture)

from bot.casework import cases
from bot.storage.models import ConversationSession, Message, Referral, Resident

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
