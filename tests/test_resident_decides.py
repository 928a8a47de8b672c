"""The resident decides how we reach them (issue 16): DELETE erases by text, checked in the database.

The conversation itself (the confirmation, STOP and crisis first, the next text a first contact) is in
tests/transcripts/delete.yaml; the contact preference and every outbound path in
tests/transcripts/contact.yaml.
"""

from __future__ import annotations

import json
import re

from conftest import RESIDENT, Phone
from sqlalchemy import func, select
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)
from test_reports import dataset, number, people, report_of  # noqa: F401 (pytest fixtures, used by name)

from bot.casework import cases
from bot.casework.reports import to_json
from bot.messaging import verify
from bot.storage.crypto import opt_out_marker
from bot.storage.models import (
    AuditEvent,
    ConversationSession,
    FollowUp,
    Message,
    Note,
    OptOutMarker,
    Referral,
    Resident,
)
from bot.storage.statuses import Outcome


def count(rt, *where) -> int:
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).where(*where)) or 0


def erase_by_text(client, phone_number: str) -> list[list[str]]:
    phone = Phone(client, phone_number)
    return [phone.text("DELETE"), phone.text("DELETE")]


def test_delete_runs_the_purge_closes_the_open_referral_and_keeps_no_number(client, rt, clock):
    ana = add_caseworker(rt)
    phone = Phone(client)
    phone.text("I need food")
    phone.text("64124")
    phone.text("1")  # a person: a referral, and a check-in in 3 days
    referral_id = count(rt, Referral.id.is_not(None))
    cases.add_note(rt, referral_id, ana, "Called the pantry for her.")
    assert count(rt, FollowUp.status == "pending") == 1
    (confirm, last) = erase_by_text(client, RESIDENT)
    assert confirm == ["Reply DELETE again to erase your messages with us."]
    assert last == ["Your messages with us are erased. Text us any time to start again. In danger, call 911."]
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident)).one()
        referral = s.get(Referral, referral_id)
        erased = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(("resident.erased", "retention.purged"))))
        details = [json.dumps(e.detail) for e in erased]
    assert (resident.phone, resident.phone_lookup, resident.anonymized_at) == (None, None, clock.now())
    assert (referral.status, referral.outcome, referral.closed_at) == ("closed", Outcome.ERASED, clock.now())
    assert count(rt, Message.body.is_not(None)) == 0  # the last text is stored, and blanked with the rest
    assert count(rt, Message.id.is_not(None)) > 0  # the rows stay for the reports
    assert count(rt, Note.body.is_not(None)) == 0
    assert count(rt, ConversationSession.id.is_not(None)) == 0
    assert count(rt, FollowUp.status == "pending") == 0
    assert len(details) == 2 and not any("816" in d or "0123" in d for d in details)  # no number in the audit
    assert count(rt, OptOutMarker.phone_lookup.is_not(None)) == 0  # she had not opted out
    # The next text is a first contact, with a new record.
    assert "private, not anonymous" in phone.text("hi")[0]
    assert count(rt, Resident.id.is_not(None)) == 2


def test_an_opted_out_number_keeps_only_a_keyed_hash_marker_until_start(client, rt):
    phone = Phone(client)
    phone.text("hi")
    phone.text("STOP")
    erase_by_text(client, RESIDENT)
    with rt.db.sessions() as s:
        (marker,) = s.scalars(select(OptOutMarker.phone_lookup)).all()
    assert marker == opt_out_marker(rt.settings.secret_key, RESIDENT) and "5550123" not in marker
    # A new record for the number (a canvass, a web visitor's code) cannot reach it.
    phone.text("hi")  # treated as new, and answered: a reply to her own text
    with rt.db.sessions() as s:
        new_id = s.scalars(select(Resident.id).where(Resident.anonymized_at.is_(None))).one()
    assert rt.outbound.welcome(new_id, "Hi from the Northeast Help Line.").status == "skipped_opted_out"
    verify.request_code(rt, "visitor", RESIDENT)
    assert count(rt, Message.kind == "code", Message.status == "skipped_opted_out") == 1
    phone.text("START")  # she opts back in: the marker goes
    assert count(rt, OptOutMarker.phone_lookup.is_not(None)) == 0
    assert rt.outbound.welcome(new_id, "Hi from the Northeast Help Line.").status == "logged"


def test_erasing_leaves_the_report_counts_as_they_were(rt, client, dataset):  # noqa: F811 (fixture)
    before = json.loads(to_json(report_of(rt)))
    erase_by_text(client, number(12))  # opted out, no referral
    assert json.loads(to_json(report_of(rt))) == before
    erase_by_text(client, number(11))  # opted out, an open safety referral: closed as erased
    after = json.loads(to_json(report_of(rt)))
    section = lambda report, key: next(sec for sec in report["sections"] if sec["key"] == key)  # noqa: E731
    assert "Erased at the resident's request" in [row[0] for row in section(after, "referral_outcomes")["rows"]]
    # Every count stays but the one closed referral: requests, needs, crises, ZIPs, contact times.
    changed = {"referral_outcomes", "closing_the_loop"}
    assert [s for s in after["sections"] if s["key"] not in changed] == [
        s for s in before["sections"] if s["key"] not in changed
    ]
    loop_before, loop_after = (section(r, "closing_the_loop")["rows"] for r in (before, after))
    assert loop_after[0][:3] == ["Referrals closed, of referrals opened", str(int(loop_before[0][1]) + 1), "38"]
    assert loop_after[1:] == loop_before[1:]
    assert count(rt, OptOutMarker.phone_lookup.is_not(None)) == 2


def test_a_web_chat_visitor_can_erase_too(client, rt):
    def chat(text: str) -> list[str]:
        resp = client.post("/chat/messages", json={"text": text}, headers={"Origin": "http://localhost"})
        assert resp.status_code == 200
        return resp.get_json()["replies"]

    chat("I need food")
    assert chat("delete my data") == ["Reply DELETE again to erase your messages with us."]
    assert chat("DELETE")[0].startswith("Your messages with us are erased.")
    with rt.db.sessions() as s:
        visitor = s.scalars(select(Resident)).one()
    assert (visitor.chat_key, visitor.anonymized_at is not None) == (None, True)
    assert count(rt, Message.body.is_not(None)) == 0
    assert "private, not anonymous" in chat("hi")[0]  # the same page starts a new conversation


def test_the_card_and_the_thread_show_how_to_reach_them(app, client, rt):
    phone = Phone(client)
    phone.text("talk to a person")
    phone.text("3")
    add_caseworker(rt)
    staff = Staff(app.test_client())
    staff.login()
    queue = staff.get("/inbox/").get_data(as_text=True)
    thread = staff.get("/inbox/referrals/1").get_data(as_text=True)
    assert "Do not text</span>" in queue
    assert re.search(r'id="contact-preference">Do not text\s+\(they chose it', thread)
    assert "your replies and check-ins are held" in thread
