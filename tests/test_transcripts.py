"""Transcripts: what the resident sends and what the bot answers, through the real signed /sms."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.models import FollowUp, Referral, Resident
from bot.segments import segments
from conftest import Phone

CASES = sorted((Path(__file__).parent / "transcripts").glob("*.yaml"))
DURATION = re.compile(r"^(\d+)([mhd])$")


def load_cases() -> list:
    out = []
    for path in CASES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


def duration(text: str) -> timedelta:
    amount, unit = DURATION.match(text).groups()
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: int(amount)})


def check_replies(turn: dict, replies: list[str]) -> None:
    said = "\n".join(replies).lower()
    context = f"after {turn['send']!r} the bot said {replies!r}"
    if turn.get("silent"):
        assert replies == [], context
        return
    assert replies, context
    for expected in turn.get("expect", []):
        assert expected.lower() in said, f"missing {expected!r} {context}"
    for unwanted in turn.get("not", []):
        assert unwanted.lower() not in said, f"unwanted {unwanted!r} {context}"
    assert all(segments(r) <= 4 for r in replies), f"a reply longer than 4 SMS segments {context}"


def check_state(rt, expected: dict) -> None:
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident)).one()
        referrals = s.scalars(select(Referral)).all()
        followups = s.scalars(select(FollowUp)).all()
    if "opted_out" in expected:
        assert resident.opted_out is expected["opted_out"]
    if "language" in expected:
        assert resident.language == expected["language"]
    if "referrals" in expected:
        assert len(referrals) == expected["referrals"]
    if "urgent" in expected:
        assert any(r.urgent for r in referrals) is expected["urgent"]
    if "category" in expected:
        assert [r.category for r in referrals] == [expected["category"]]
    if "followups" in expected:
        assert len([f for f in followups if f.status != "cancelled"]) == expected["followups"]


@pytest.mark.parametrize("case", load_cases())
def test_transcript(case, client, rt, clock):
    if "now" in case:
        clock.set(datetime.fromisoformat(case["now"]))
    phone = Phone(client)
    for turn in case["turns"]:
        if "wait" in turn:
            clock.set(clock.now() + duration(turn["wait"]))
            continue
        check_replies(turn, phone.text(turn["send"]))
        clock.set(clock.now() + timedelta(seconds=20))
    check_state(rt, case.get("then", {}))
