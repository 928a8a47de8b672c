"""The statements of one ordinary text, in SQLAlchemy Core, compiled once and run on the DB-API cursor
(storage/prepared.py; messaging/service.py runs them):

1. and 2. `lock_and_read`: insert the resident or update the existing row (INSERT … ON CONFLICT … DO
   UPDATE … RETURNING), which locks it, so one person's texts never interleave; then the conversation
   row with what the engine's context needs kept on it (the open referral, the check-in awaiting an
   answer, the loop guard's count), whether the MessageSid was seen, who is on duty, and the inbound
   message's id;
3. `store_messages`: the inbound message and the replies, in one INSERT;
4. `save_state`: the conversation row.

On PostgreSQL 1 and 2 go in one round trip, and 3 and 4 in another (`batched`).

The conversation row's pointers are kept by whoever opens a referral (`note_open_referral`) or sends
a check-in (`note_checkin`), in that same transaction. A pointer may go stale (the referral closed,
the check-in was answered): the fast path then steps aside and the slow path reads both again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Integer,
    Row,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.crypto import phone_lookups
from bot.storage.models import Base
from bot.storage.prepared import BATCHED, Prepared
from bot.storage.statuses import FollowUpStatus, ReferralStatus

OPEN_REFERRAL = (ReferralStatus.NEW, ReferralStatus.CLAIMED, ReferralStatus.CONTACTED)
CHECKIN_SENT = (FollowUpStatus.SENT, FollowUpStatus.LOGGED)
RECENT = timedelta(minutes=1)  # the loop guard counts the texts in this long

residents = Base.metadata.tables["residents"]
conversations = Base.metadata.tables["conversation_sessions"]
messages = Base.metadata.tables["messages"]
referrals = Base.metadata.tables["referrals"]
follow_ups = Base.metadata.tables["follow_ups"]
caseworkers = Base.metadata.tables["caseworkers"]
audit_events = Base.metadata.tables["audit_events"]
campaigns = Base.metadata.tables["campaigns"]

# What the turn needs of the resident; the upsert returns it.
LOCKED = (
    residents.c.id,
    residents.c.channel,
    residents.c.language,
    residents.c.zip_code,
    residents.c.timezone,
    residents.c.opted_out_at,
    residents.c.contact_preference,
    residents.c.contact_chosen_at,
    residents.c.campaign_id,
    residents.c.quiet_until,
    residents.c.linked_resident_id,
    residents.c.last_seen_at,
)


@dataclass
class Case:
    """The open referral as plain values, read with the conversation row. Effects change it in memory;
    then one UPDATE stores it."""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "resident_id",
        "status",
        "category",
        "reason",
        "zip_code",
        "urgent",
        "tier",
        "resource_ids",
        "unread",
        "created_at",
        "crisis_kind",
        "notified_at",
        "escalation_due_at",
        "bot_resumed_at",
        "on_call_told_at",
        "held_texts",
        "repeat",
        "queue_at",
    )

    id: int | None  # None: opened by this text, not stored yet
    resident_id: int
    status: str
    category: str | None
    reason: str
    zip_code: str | None
    urgent: bool
    tier: int
    resource_ids: list[Any]
    unread: bool
    created_at: datetime
    queue_at: datetime
    crisis_kind: str | None = None
    notified_at: datetime | None = None
    escalation_due_at: datetime | None = None
    bot_resumed_at: datetime | None = None
    on_call_told_at: datetime | None = None
    held_texts: int = 0
    repeat: bool = False


def _one_of(column: Any, values: tuple[str, ...]) -> ColumnElement[bool]:
    """`column IN (…)` with each constant bound by itself, so the statement can be prepared."""
    return column.in_([literal(str(value)) for value in values])


def _upsert(dialect: str, unique: str, values: dict[str, Any], older: int = 0) -> Any:
    """Insert the resident, or lock and touch the existing row. `last_seen_at` stays NULL for someone
    who never texted (the slow path greets them and sets it); the `older` lookups (older_0 …) skip
    the insert where the resident is on file under an older form of the lookup (before rotate-key):
    the slow path finds them. Returns nothing then."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = select(*(bindparam(name, type_=residents.c[name].type) for name in values))
    if older:
        lookups = [bindparam(f"older_{i}", type_=residents.c.phone_lookup.type) for i in range(older)]
        row = row.where(~exists().where(residents.c.phone_lookup.in_(lookups)))
    stmt = insert(residents).from_select(list(values), row)
    seen_before = case((residents.c.last_seen_at.is_(None), null()), else_=stmt.excluded.created_at)
    return stmt.on_conflict_do_update(index_elements=[unique], set_={"last_seen_at": seen_before}).returning(*LOCKED)


_BY_PHONE = {"phone": None, "phone_lookup": None, "channel": None, "created_at": None}
_BY_CHAT_KEY = {"chat_key": None, "channel": None, "created_at": None}


_PREPARED: dict[tuple[str, Any], Prepared] = {}


def _prepared(conn: Connection, key: Any, build: Callable[[str], Any]) -> Prepared:
    """The turn's statement `key` for the connection's dialect, built and compiled on first use, then
    kept: building and compiling a statement costs more than running it."""
    dialect = conn.dialect
    if (made := _PREPARED.get((dialect.name, key))) is None:
        made = _PREPARED[(dialect.name, key)] = Prepared(build(dialect.name), dialect)
    return made


def _read(dialect: str, by: str) -> Any:
    """One row: the conversation, its open referral and check-in, and the turn's other facts; the
    resident found by `by` (id, phone_lookup or chat_key), bound under the same name."""
    aggregate = func.json_agg if dialect == "postgresql" else func.json_group_array
    duty = aggregate(caseworkers.c.duty_hours, type_=JSON)
    next_id: ColumnElement[int]
    if dialect == "postgresql":  # the inbound message's id, taken now so the replies can point at it
        next_id = func.nextval(func.pg_get_serial_sequence("messages", "id"))
    else:  # SQLite: this transaction holds the write lock, so max + 1 is the next rowid
        next_id = select(func.coalesce(func.max(messages.c.id), 0) + 1).scalar_subquery()
    # No conversation row yet (a first text): is there anything the row would have pointed at?
    any_referral, any_checkin = referrals.alias("any_referral"), follow_ups.alias("any_checkin")
    untracked = case(
        (
            conversations.c.id.is_(None),
            exists().where(any_referral.c.resident_id == residents.c.id, _one_of(any_referral.c.status, OPEN_REFERRAL))
            | exists().where(
                any_checkin.c.resident_id == residents.c.id,
                _one_of(any_checkin.c.status, CHECKIN_SENT),
                any_checkin.c.answered_at.is_(None),
            ),
        ),
        else_=false(),
    )
    # A canvass running now: a first text may carry its code, which the ORM path attributes.
    now = bindparam("now", type_=campaigns.c.starts_at.type)
    running = exists().where(
        or_(campaigns.c.starts_at.is_(None), campaigns.c.starts_at <= now),
        or_(campaigns.c.ends_at.is_(None), campaigns.c.ends_at > now),
    )
    read = (
        select(
            conversations.c.id,
            conversations.c.state,
            conversations.c.recent_since,
            conversations.c.recent_count,
            conversations.c.open_referral_id,
            conversations.c.checkin_id,
            *(referrals.c[name].label(f"referral_{name}") for name in Case.COLUMNS),
            follow_ups.c.status.label("checkin_status"),
            follow_ups.c.answered_at.label("checkin_answered_at"),
            follow_ups.c.sent_at.label("checkin_sent_at"),
            select(messages.c.id)
            .where(messages.c.provider_sid == bindparam("provider_sid"))
            .scalar_subquery()
            .label("seen_id"),
            select(duty).where(caseworkers.c.active.is_(True)).scalar_subquery().label("duty_hours"),
            next_id.label("next_id"),
            untracked.label("untracked"),
            running.label("campaigns_running"),
        )
        .select_from(
            residents.outerjoin(conversations, conversations.c.resident_id == residents.c.id)
            .outerjoin(referrals, referrals.c.id == conversations.c.open_referral_id)
            .outerjoin(follow_ups, follow_ups.c.id == conversations.c.checkin_id)
        )
        .where(residents.c[by] == bindparam(by, type_=residents.c[by].type))
    )
    return read


def _send_lock(conn: Connection, channel: str, address: str, now: datetime) -> tuple[Callable[[], list[Any]], str, str]:
    """Send the upsert that locks the resident; its rows to come, and the key that finds the same row."""
    if channel == "web":
        params = {"chat_key": address, "channel": channel, "created_at": now}
        upsert = _prepared(conn, "by_chat_key", lambda d: _upsert(d, "chat_key", _BY_CHAT_KEY))
        return upsert.send(conn, params), "chat_key", address
    current, *older = phone_lookups(address)
    params = {"phone": address, "phone_lookup": current, "channel": channel, "created_at": now}
    params |= {f"older_{i}": lookup for i, lookup in enumerate(older)}
    upsert = _prepared(conn, ("by_phone", len(older)), lambda d: _upsert(d, "phone_lookup", _BY_PHONE, len(older)))
    return upsert.send(conn, params), "phone_lookup", current


def lock_and_read(
    conn: Connection, channel: str, address: str, provider_sid: str | None, checkin_wait: timedelta, now: datetime
) -> tuple[Any | None, Facts | None]:
    """The resident's row (LOCKED columns), created if new and locked, then the turn's facts read from
    the same row found by the same key, sent together: one round trip on PostgreSQL (the read runs after
    the upsert, so it sees the row and its lock). (None, None) when they are on file under an older
    lookup form, for the slow path to find."""
    with batched(conn):
        locked, key, value = _send_lock(conn, channel, address, now)
        params = {key: value, "provider_sid": provider_sid, "now": now}
        facts = _prepared(conn, ("read", key), lambda d: _read(d, key)).send(conn, params)
        who, found = locked(), facts()
    if not who or not found:  # on file under an older lookup form: the slow path finds them
        return None, None
    return who[0], _facts(found[0], checkin_wait, now)


@contextmanager
def batched(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, the prepared statements sent inside go to the server together (psycopg's pipeline
    mode), up to the first whose rows are read, and the transaction's BEGIN with them; elsewhere, one by
    one. Only `Prepared` statements: SQLAlchemy's own execution reads a result as soon as it runs."""
    if conn.dialect.name != "postgresql":
        yield
        return
    with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
        conn.info[BATCHED] = True
        try:
            yield
        finally:
            conn.info[BATCHED] = False


@dataclass(frozen=True)
class Facts:
    """What one read of the conversation row tells the turn."""

    conversation_id: int | None  # None: a first text, the row is to be made
    state: dict | None
    recent_since: datetime | None
    recent_count: int
    seen_id: int | None  # the MessageSid was handled before: this message
    duty_hours: list[str | None]  # each active caseworker's duty hours (None: the office hours)
    next_id: int  # the id the inbound message takes
    referral: Case | None  # the open referral
    checkin_sent_at: datetime | None  # a check-in awaits its answer: when it was sent
    campaigns_running: bool  # a canvass is running: a first text may carry its code
    # A pointer no longer holds (the referral closed, the check-in was answered or expired), or there is
    # no conversation row yet and the resident has a referral or a check-in it would have pointed at.
    stale: bool


def _facts(row: Any, checkin_wait: timedelta, now: datetime) -> Facts:
    """The turn's facts, from the resident's row (locked) and their conversation's."""
    referral_open = row.referral_status in OPEN_REFERRAL
    checkin_open = (
        row.checkin_status in CHECKIN_SENT
        and row.checkin_answered_at is None
        and row.checkin_sent_at is not None
        and row.checkin_sent_at > now - checkin_wait
    )
    return Facts(
        conversation_id=row.id,
        state=row.state or None,
        recent_since=row.recent_since,
        recent_count=row.recent_count or 0,
        seen_id=row.seen_id,
        duty_hours=row.duty_hours or [],
        next_id=row.next_id,
        referral=Case(**{name: getattr(row, f"referral_{name}") for name in Case.COLUMNS}) if referral_open else None,
        checkin_sent_at=row.checkin_sent_at if checkin_open else None,
        campaigns_running=bool(row.campaigns_running),
        stale=bool(row.untracked)
        or (row.open_referral_id is not None and not referral_open)
        or (row.checkin_id is not None and not checkin_open),
    )


def count_text(since: datetime | None, count: int, now: datetime) -> tuple[datetime, int]:
    """The loop guard's window after one more text: counted from its first text, for a minute."""
    if since is None or now - since >= RECENT:
        return now, 1
    return since, count + 1


# -- writes --------------------------------------------------------------------------------------


_MESSAGE_COLUMNS = (
    "resident_id",
    "direction",
    "channel",
    "kind",
    "body",
    "provider_sid",
    "status",
    "segments",
    "num_media",
    "in_reply_to_id",
    "referral_id",
    "created_at",
    "updated_at",
)


def _insert_messages(dialect: str, count: int) -> Any:
    """`count` rows in one INSERT, their parameters suffixed _0, _1 …; a row without an id (a reply)
    takes the next one."""

    def row(i: int) -> dict[str, Any]:
        given = bindparam(f"id_{i}", type_=Integer)
        new_id = (
            func.coalesce(given, func.nextval(func.pg_get_serial_sequence("messages", "id")))
            if dialect == "postgresql"
            else given  # SQLite: a NULL id takes the next rowid
        )
        return {"id": new_id, **{c: bindparam(f"{c}_{i}", type_=messages.c[c].type) for c in _MESSAGE_COLUMNS}}

    return messages.insert().values([row(i) for i in range(count)]).returning(messages.c.id)


def store_messages(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the inbound message (with its id) and the replies (id None) in one statement; their ids
    in the order given."""
    insert = _prepared(conn, ("messages", len(rows)), lambda d: _insert_messages(d, len(rows)))
    params = {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in {"id": None, **row}.items()}
    return sorted(row.id for row in insert.run(conn, params))  # ids rise in the order the rows were inserted


_STATE = ("state", "flow", "step", "last_activity_at", "recent_since", "recent_count")
_SAVE_STATE = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(
        # Never the pointers: a turn that opens a referral takes the ORM path, and a caseworker may
        # reopen one meanwhile.
        {c: bindparam(f"new_{c}", type_=conversations.c[c].type) for c in _STATE}
    )
)
_NEW_STATE = conversations.insert().values(
    {c: bindparam(f"new_{c}", type_=conversations.c[c].type) for c in _STATE}
    | {"resident_id": bindparam("of_resident")}
)


def save_state(
    conn: Connection,
    resident_id: int,
    facts: Facts,
    state: dict,
    now: datetime,
    recent: tuple[datetime, int],
) -> None:
    """Update the conversation row, or make it on a first text."""
    values = dict(
        zip((f"new_{c}" for c in _STATE), (state, state.get("flow"), state.get("step"), now, *recent), strict=True)
    )
    if facts.conversation_id is None:
        _prepared(conn, "new_state", lambda _: _NEW_STATE).run(conn, {**values, "of_resident": resident_id})
    else:
        params = {**values, "conversation_id": facts.conversation_id}
        _prepared(conn, "save_state", lambda _: _SAVE_STATE).run(conn, params)


_UPDATE_RESIDENT = (
    update(residents)
    .where(residents.c.id == bindparam("resident_id"))
    .values({c: bindparam(f"new_{c}") for c in ("language", "zip_code", "timezone", "last_seen_at")})
)


def update_resident(
    conn: Connection, resident_id: int, profile: tuple[str | None, str | None, str | None], last_seen_at: datetime
) -> None:
    """The resident's language, ZIP and time zone after a profile answer; when they last texted."""
    language, zip_code, tz = profile
    _prepared(conn, "update_resident", lambda _: _UPDATE_RESIDENT).run(
        conn,
        {
            "resident_id": resident_id,
            "new_language": language,
            "new_zip_code": zip_code,
            "new_timezone": tz,
            "new_last_seen_at": last_seen_at,
        },
    )


def _update_referral(columns: tuple[str, ...]) -> Any:
    return (
        update(referrals)
        .where(referrals.c.id == bindparam("referral_id"))
        .values({c: bindparam(f"new_{c}", type_=referrals.c[c].type) for c in columns})
    )


# What a relay or a hand-off's end changes on an open referral that was read, not locked: nothing else,
# since a caseworker or the scheduler may be changing the rest meanwhile.
_TOUCHED = ("unread", "bot_resumed_at")
# What raising it changes (triage.raise_open, mark_seen): only once the row is locked (`lock_case`).
_RAISED = (*_TOUCHED, "held_texts", "urgent", "category", "resource_ids", "crisis_kind") + (
    "notified_at",
    "escalation_due_at",
    "queue_at",
)
_UPDATES = {False: _update_referral(_TOUCHED), True: _update_referral(_RAISED)}
_LOCK_CASE = (
    select(*(referrals.c[name] for name in Case.COLUMNS))
    .where(referrals.c.id == bindparam("referral_id"), _one_of(referrals.c.status, OPEN_REFERRAL))
    .with_for_update()
)
_INSERT_AUDIT = audit_events.insert()
_INSERT_FOLLOW_UPS = follow_ups.insert()


_INSERT_CASE = referrals.insert().returning(referrals.c.id)


def open_case(conn: Connection, case: Case) -> int:
    """Insert a referral the text opened; its id."""
    values = {name: getattr(case, name) for name in Case.COLUMNS if name != "id"}
    return conn.execute(_INSERT_CASE, values).scalar_one()


def lock_case(conn: Connection, case: Case) -> Case | None:
    """The open referral locked, to be raised; None when it closed meanwhile. On SQLite the turn's
    transaction already holds the one write lock, so the row `lock_and_read` gave is current."""
    if conn.dialect.name == "sqlite":
        return case
    rows = _prepared(conn, "lock_case", lambda _: _LOCK_CASE).run(conn, {"referral_id": case.id})
    return Case(**rows[0]._asdict()) if rows else None


def store_case(conn: Connection, case: Case, *, locked: bool) -> None:
    """Update the open referral with what the text's effects changed: a relay or a hand-off's end, or,
    when `locked`, whatever raising it changed."""
    columns = _RAISED if locked else _TOUCHED
    store = _prepared(conn, ("store_case", locked), lambda _: _UPDATES[locked])
    store.run(conn, {"referral_id": case.id, **{f"new_{k}": getattr(case, k) for k in columns}})


def insert_rows(conn: Connection, audits: list[dict[str, Any]], followups: list[dict[str, Any]]) -> None:
    """Audit rows and follow-ups, each kind in one INSERT."""
    if audits:
        conn.execute(_INSERT_AUDIT, audits)
    if followups:
        conn.execute(_INSERT_FOLLOW_UPS, followups)


_REPLIES = (
    select(messages.c.id, messages.c.body)
    .where(messages.c.in_reply_to_id == bindparam("inbound_id"))
    .order_by(messages.c.id)
)


def replies_to(conn: Connection, inbound_id: int) -> list[Row]:
    """The answers stored for an inbound message (a repeated MessageSid gets them again)."""
    return list(conn.execute(_REPLIES, {"inbound_id": inbound_id}))


_NOTE_OPEN_REFERRAL = (
    update(conversations)
    .where(
        conversations.c.resident_id == bindparam("of_resident"),
        (conversations.c.open_referral_id.is_(None)) | (conversations.c.open_referral_id < bindparam("referral_id")),
    )
    .values(open_referral_id=bindparam("referral_id"))
)
_NOTE_CHECKIN = (
    update(conversations)
    .where(conversations.c.resident_id == bindparam("of_resident"))
    .values(checkin_id=bindparam("followup_id"))
)


def note_open_referral(conn: Connection, resident_id: int, referral_id: int) -> None:
    """A referral opened (or reopened): the conversation row points at the newest open one."""
    conn.execute(_NOTE_OPEN_REFERRAL, {"of_resident": resident_id, "referral_id": referral_id})


def note_checkin(conn: Connection, resident_id: int, followup_id: int) -> None:
    """A check-in went out: its answer is read as such (the conversation row points at it)."""
    conn.execute(_NOTE_CHECKIN, {"of_resident": resident_id, "followup_id": followup_id})
