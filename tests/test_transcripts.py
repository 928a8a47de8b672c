"""Transcripts: what the resident sends and what the bot answers, through the real signed /sms.

Runs every case in tests/transcripts/ and every engine case (tests/engine_cases/) that needs no
hand-made context, so each flow path is proven end to end: signature, storage, locking, engine,
effects turned into rows, TwiML. Transcript-only turns drive the rest of the product:
`dispatch: true|<status>` (the follow-up sender runs), `claim` (a caseworker claims the open referral),
`close` (a caseworker closes it). A case's `campaigns` (codes) are added before it starts. As in
the engine cases, a caseworker is on duty unless the case says `ctx: {on_duty: false}`, and then
nobody is (no caseworker account at all).
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

from bot.casework import campaigns
from bot.conversation.flows import parse_duration
from bot.messaging.dispatch import dispatch_due
from bot.storage.models import AuditEvent, Campaign, FollowUp, Referral, Resident

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
        resident = s.scalars(select(Resident)).one()
        referrals = s.scalars(select(Referral).order_by(Referral.id)).all()
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
        "campaign": lambda: campaign.code if campaign else None,
        "listening": lambda: [e.detail["answer"] for e in heard],
    }
    for key, value in expected.items():
        assert checks[key]() == value, f"{key} is {checks[key]()!r}, expected {value!r}"


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
