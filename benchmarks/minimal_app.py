"""The honest minimum for benchmarks/webhook.py: the signature check, five SQLAlchemy Core statements in
one transaction, and TwiML. No conversation: what storing a text and its answer costs at the least.

Its own tables (`minimal_*`, created if missing), in the database the benchmark gives it:
  1. upsert the resident and lock it (INSERT … ON CONFLICT … DO UPDATE … RETURNING)
  2. insert the inbound message (its id back)
  3. read the state
  4. insert the reply
  5. upsert the state
and the commit.

    DATABASE_URL=… TWILIO_AUTH_TOKEN=… PUBLIC_BASE_URL=… gunicorn -w 2 minimal_app:app   # from benchmarks/
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache

from flask import Flask, Response, abort, request
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from twilio.request_validator import RequestValidator

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>'
REPLY = "Hi, this is the Northeast Help Line. What do you need help with?"

meta = MetaData()
residents = Table(
    "minimal_residents",
    meta,
    Column("id", Integer, primary_key=True),
    Column("phone", String(32), unique=True, nullable=False),
    Column("last_seen_at", DateTime(timezone=True)),
)
messages = Table(
    "minimal_messages",
    meta,
    Column("id", Integer, primary_key=True),
    Column("resident_id", Integer, nullable=False),
    Column("direction", String(3), nullable=False),
    Column("body", Text),
    Column("provider_sid", String(64), unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
states = Table(
    "minimal_states",
    meta,
    Column("resident_id", Integer, primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def create_tables(url: str) -> None:
    """Once, before the workers start (the benchmark calls it)."""
    made = create_engine(url)
    meta.create_all(made)
    made.dispose()


@cache
def engine() -> Engine:
    """Made in each worker (gunicorn runs this app without --preload)."""
    url = os.environ["DATABASE_URL"]
    made = create_engine(url, connect_args={"timeout": 10} if url.startswith("sqlite") else {})
    if made.dialect.name == "sqlite":

        @event.listens_for(made, "connect")
        def _connect(conn, _record):
            conn.isolation_level = None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")

        @event.listens_for(made, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return made


@cache
def statements(dialect: str):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    upsert_resident = insert(residents).values(phone=bindparam("phone"), last_seen_at=bindparam("now"))
    upsert_resident = upsert_resident.on_conflict_do_update(
        index_elements=["phone"], set_={"last_seen_at": upsert_resident.excluded.last_seen_at}
    ).returning(residents.c.id)
    upsert_state = insert(states).values(
        resident_id=bindparam("rid"), state=bindparam("state"), updated_at=bindparam("now")
    )
    upsert_state = upsert_state.on_conflict_do_update(
        index_elements=["resident_id"], set_={"state": upsert_state.excluded.state, "updated_at": bindparam("now")}
    )
    return (
        upsert_resident,
        messages.insert().returning(messages.c.id),
        select(states.c.state).where(states.c.resident_id == bindparam("rid")),
        upsert_state,
    )


app = Flask(__name__)


@app.post("/sms")
def sms() -> Response:
    token, base = os.environ["TWILIO_AUTH_TOKEN"], os.environ["PUBLIC_BASE_URL"]
    if not RequestValidator(token).validate(base + "/sms", request.form, request.headers.get("X-Twilio-Signature", "")):
        abort(403)
    form, now = request.form, datetime.now(UTC)
    db = engine()
    lock, insert_message, read_state, save_state = statements(db.dialect.name)
    with db.begin() as conn:
        rid = conn.execute(lock, {"phone": form["From"], "now": now}).scalar_one()
        row = {"resident_id": rid, "provider_sid": form["MessageSid"], "created_at": now}
        conn.execute(insert_message, {**row, "direction": "in", "body": form.get("Body", "")})
        state = conn.execute(read_state, {"rid": rid}).scalar() or {"turns": 0}
        conn.execute(insert_message, {**row, "direction": "out", "body": REPLY, "provider_sid": None})
        conn.execute(save_state, {"rid": rid, "state": {"turns": state["turns"] + 1}, "now": now})
    return Response(TWIML.format(REPLY), mimetype="text/xml")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
