"""Transcripts: what the resident sends and what the bot answers, through the real signed /sms.

Runs every case in tests/transcripts/ and every engine case (tests/engine_cases/) that needs no
hand-made context, so each flow path is proven end to end: signature, storage, locking, engine,
effects turned into rows, TwiML. Transcript-only turns drive the rest of the product:
`dispatch: true|<status>` (the follow-up sender runs), `claim` (a caseworker claims the open referral),
`close` (a caseworker closes it), `outbound: {path: status}` (the line starts a text by each path
named: `caseworker` reply, `checkin` due now, `code` to the number from the web page, canvass
`welcome`; each must end with its status, e.g. `held_contact_preference`). A case's `campaigns`
(codes) are added before it starts. As in the engine cases,
a caseworker is on duty unless the case says `ctx: {on_duty: false}`, and then nobody is (no
caseworker account at all).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cases import check_replies
from conftest import Phone
from sqlalchemy import select
from staff_helpers import add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot.casework import campaigns, cases
from bot.conversation.flows import parse_duration
from bot.messaging import verify
from bot.messaging.dispatch import dispatch_due
from bot.storage.models import AuditEvent, Campaign, Caseworker, FollowUp, Message, Referral, Resident

HERE = Path(__file__).parent
TURN_GAP = timedelta(seconds=20)


def needs_hand_made_context(case: dict) -> bool:
    """Engine cases that set flags the webhook cannot (a DB-backed transcript covers those)."""
    flags = dict(case.get("ctx", {}))
    flags.pop("on_duty", None)
    return bool(flags) or any("ctx" in t or "state" in t for t in case["turns"])


def load_cases() -> list:
    out = []
    for folder in ("transcripts", "engine_cases"):
        for path in sorted((HERE / folder).glob("*.yaml")):
            for case in yaml.safe_load(path.read_text(encoding="utf-8")):
                if folder == "engine_cases" and needs_hand_made_context(case):
                    continue
                out.append(pytest.param(case, id=f"{folder}/{path.stem}: {case['name']}"))
    return out


def check_state(rt, expected: dict) -> None:
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident).where(Resident.channel == "sms").order_by(Resident.id.desc())).first()
        referrals = s.scalars(select(Referral).where(Referral.resident_id == resident.id).order_by(Referral.id)).all()
        followups = s.scalars(select(FollowUp)).all()
        campaign = s.get(Campaign, resident.campaign_id) if resident.campaign_id else None
        heard = s.scalars(select(AuditEvent).where(AuditEvent.action == "listening.answered")).all()
    checks = {
        "opted_out": lambda: resident.opted_out,
        "language": lambda: resident.language,
        "zip_code": lambda: resident.zip_code,
        "referrals": lambda: len(referrals),
        "urgent": lambda: any(r.urgent for r in referrals),
        "category": lambda: referrals[-1].category if referrals else None,
        "referral_status": lambda: referrals[-1].status if referrals else None,
        "outcome": lambda: referrals[-1].outcome if referrals else None,
        "followups": lambda: sum(f.status != "cancelled" for f in followups),
        "checkin_answer": lambda: next((f.answer for f in followups if f.answer), None),
        "contact_preference": lambda: resident.contact_preference,
        "contact_chosen": lambda: resident.contact_chosen_at is not None,
        "erased": lambda: s_count(rt, Resident.anonymized_at.is_not(None)) > 0,
        "residents": lambda: s_count(rt, Resident.channel == "sms"),
        "campaign": lambda: campaign.code if campaign else None,
        "listening": lambda: [e.detail["answer"] for e in heard],
    }
    for key, value in expected.items():
        assert checks[key]() == value, f"{key} is {checks[key]()!r}, expected {value!r}"


def s_count(rt, where) -> int:
    with rt.db.sessions() as s:
        return len(s.scalars(select(Resident.id).where(where)).all())


def start_texts(rt, expected: dict[str, str]) -> None:
    """The line starts a text to the resident by each path named; each must end with its status."""
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident).where(Resident.channel == "sms").order_by(Resident.id.desc())).first()
        referral = s.scalars(select(Referral).order_by(Referral.id.desc())).first()
        staff = s.scalar(select(Caseworker.id).order_by(Caseworker.id))
    paths = {
        "caseworker": lambda: cases.reply(rt, referral.id, staff or add_caseworker(rt), "Hi, this is Ana.").status,
        "checkin": lambda: checkin_now(rt, resident.id, referral.id if referral else None),
        "code": lambda: code_to(rt, resident.phone),
        "welcome": lambda: rt.outbound.welcome(resident.id, "Hi from the Northeast Help Line.").status,
    }
    for path, status in expected.items():
        assert paths[path]() == status, f"{path}: expected {status}"


def checkin_now(rt, resident_id: int, referral_id: int | None) -> str:
    with rt.db.transaction() as s:
        s.add(FollowUp(resident_id=resident_id, referral_id=referral_id, template="checkin", due_at=rt.clock.now()))
    (done,) = dispatch_due(rt)
    return done.status


def code_to(rt, phone: str) -> str:
    verify.request_code(rt, "a-web-visitor", phone)
    with rt.db.sessions() as s:
        return s.scalars(select(Message.status).where(Message.kind == "code").order_by(Message.id.desc())).first()


def claim(rt) -> None:
    with rt.db.transaction() as s:
        referral = s.scalars(select(Referral).where(Referral.status == "new")).one()
        referral.status, referral.claimed_at = "claimed", rt.clock.now()


def close(rt) -> None:
    with rt.db.transaction() as s:
        referral = s.scalars(select(Referral).where(Referral.status != "closed")).one()
        referral.status, referral.closed_at, referral.outcome = "closed", rt.clock.now(), "got_help"


def send_due(rt, status: str, expect: list[str]) -> None:
    """Run the follow-up sender; each due follow-up must end with `status` (true means sent)."""
    done = dispatch_due(rt)
    if status == "nothing_due":
        assert done == []
        return
    assert done, "a follow-up was due"
    for d in done:
        assert d.status == ("logged" if status is True else status), d
        for word in expect:
            assert word.lower() in (d.body or "").lower()


@pytest.mark.parametrize("case", load_cases())
def test_transcript(case, client, rt, clock):
    if "now" in case:
        clock.set(datetime.fromisoformat(case["now"]))
    if case.get("ctx", {}).get("on_duty", True):
        add_caseworker(rt)  # office hours: on duty on weekdays 9 to 5
    for code in case.get("campaigns", []):
        campaigns.add(rt.db, clock.now(), code=code, name=f"Canvass {code}", zips=["64124"])
    phone = Phone(client)
    for turn in case["turns"]:
        if "wait" in turn:
            clock.set(clock.now() + parse_duration(turn["wait"]))
        elif "claim" in turn:
            claim(rt)
        elif "close" in turn:
            close(rt)
        elif "dispatch" in turn:
            send_due(rt, turn["dispatch"], turn.get("expect", []))
        elif "outbound" in turn:
            start_texts(rt, turn["outbound"])
        else:
            extra = {"NumMedia": str(turn["media"])} if turn.get("media") else {}
            if turn.get("carrier"):
                extra["OptOutType"] = turn["carrier"]
            replies = phone.text(str(turn["send"]), **extra)
            check_replies(turn, replies, f"after {turn['send']!r} the bot said {replies!r}")
            clock.set(clock.now() + TURN_GAP)
        if "then" in turn:
            check_state(rt, turn["then"])
    check_state(rt, case.get("then", {}))
