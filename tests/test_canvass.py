"""The canvasser's form, through the real app: the number proven by a code read back at the door, then
an SMS resident found or made (never merged), referrals in the inbox, one discreet welcome text inside
the sending window, the usual check-in, and the contact preference the resident gave."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import RESIDENT, Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2, token_in  # noqa: F401 (autouse fixture)

from bot.casework import campaigns
from bot.messaging.dispatch import dispatch_due
from bot.storage.models import AuditEvent, FollowUp, Note, Referral, Resident

CODE_IN = re.compile(r"\b(\d{6})\b")
WELCOME = "Hi, this is the Northeast Help Line. Reply to talk to us, or STOP to end."


@pytest.fixture
def sender(outbox):
    return outbox


@pytest.fixture
def env(env):
    return {**env, "PROGRAM_NUMBER": "+18165550100"}


@pytest.fixture
def door(client, rt, clock):
    """A canvasser logged in, the form open, a campaign running."""
    campaigns.add(rt.db, clock.now(), code="IA1129", name="Independence Ave", zips=["64124"])
    add_caseworker(rt, email="cam@example.org", name="Cam", role="canvasser")
    add_caseworker(rt)  # a caseworker on duty
    resp = Staff(client).login("cam@example.org")
    assert resp.status_code == 302 and resp.headers["Location"] == "/canvass"
    return Door(client, token_in(client.get("/canvass").get_data(as_text=True)))


class Door:
    def __init__(self, client, token: str) -> None:
        self.client, self.token, self.visit = client, token, ""

    def post(self, path: str, body: dict):
        return self.client.post(path, json=body, headers={"X-CSRFToken": self.token})

    def prove(self, outbox, number: str = RESIDENT) -> None:
        resp = self.post("/canvass/code.json", {"phone": number})
        assert resp.status_code == 200, resp.get_json()
        self.visit = resp.get_json()["visit"]
        code = CODE_IN.search(outbox.to(number)[-1]).group(1)
        assert self.post("/canvass/code.json", {"phone": number, "visit": self.visit}).status_code == 200  # again
        code = CODE_IN.search(outbox.to(number)[-1]).group(1)
        resp = self.post("/canvass/check.json", {"visit": self.visit, "phone": number, "code": code})
        assert resp.status_code == 200, resp.get_json()

    def send(self, **fields):
        body = {
            "visit": self.visit,
            "needs": ["food", "housing"],
            "zip": "64124",
            "language": "es",
            "safe_to_text": "1",
            "campaign": "IA1129",
            "note": "Two kids; landlord sent a notice.",
            "consent": True,
            "heard_at": "2026-12-01T15:58:00Z",
            **fields,
        }
        return self.post("/canvass/visits.json", body)


def test_a_visit_at_the_door_opens_referrals_for_the_number_it_proved(door, rt, outbox):
    door.prove(outbox)
    resp = door.send()
    assert resp.status_code == 201, resp.get_json()
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident).where(Resident.channel == "sms")).one()
        referrals = s.scalars(select(Referral).order_by(Referral.id)).all()
        followups = s.scalars(select(FollowUp).order_by(FollowUp.due_at)).all()
        note = s.scalars(select(Note)).one()
        consent = s.scalars(select(AuditEvent).where(AuditEvent.action == "consent.recorded")).all()[-1]
        door_row = s.scalars(select(Resident).where(Resident.channel == "door")).one()
        campaign = s.get(campaigns.Campaign, resident.campaign_id)
    assert resident.phone == RESIDENT and (resident.language, resident.zip_code) == ("es", "64124")
    assert resident.contact_preference == "any" and campaign.code == "IA1129"
    assert [(r.category, r.reason, r.resident_id, r.status) for r in referrals] == [
        ("food", "canvass", resident.id, "new"),
        ("housing", "canvass", resident.id, "new"),
    ]
    assert note.body == "Two kids; landlord sent a notice." and note.referral_id == referrals[0].id
    assert consent.detail["heard_at"] == "2026-12-01T15:58:00+00:00" and consent.detail["heard_by"] == consent.actor_id
    assert door_row.linked_resident_id == resident.id and door_row.phone is None
    assert [(f.template, f.due_at - followups[0].due_at) for f in followups] == [
        ("welcome", timedelta(0)),
        ("checkin", timedelta(days=3)),
    ]
    assert resp.get_json() == {"referrals": [r.id for r in referrals], "duplicate": False}
    assert door.send().get_json()["duplicate"] is True  # a retry records nothing twice
    with rt.db.sessions() as s:
        assert len(s.scalars(select(Referral)).all()) == 2


def test_the_welcome_text_names_no_need_and_goes_out_in_the_window(door, rt, outbox, clock):
    clock.set(clock.now().replace(hour=3))  # 21:00 in Kansas City, the night before
    door.prove(outbox)
    door.send(language="en")
    assert [d.status for d in dispatch_due(rt)] == ["held_quiet_hours"]
    clock.set(clock.now() + timedelta(hours=12))
    sent = dispatch_due(rt)
    assert [(d.status, d.body) for d in sent] == [("sent", WELCOME)]
    assert outbox.to(RESIDENT)[-1] == WELCOME


def test_a_number_that_texted_before_is_found_never_merged(door, rt, outbox, client):
    Phone(client).text("HI")
    with rt.db.sessions() as s:
        before = s.scalars(select(Resident.id).where(Resident.channel == "sms")).one()
    door.prove(outbox)
    door.send()
    with rt.db.sessions() as s:
        residents = s.scalars(select(Resident)).all()
        referral = s.scalars(select(Referral)).first()
    assert referral.resident_id == before
    assert sorted(r.channel for r in residents) == ["door", "sms"]


@pytest.mark.parametrize(("answer", "preference"), [("2", "reply_only"), ("3", "none")])
def test_when_texting_is_not_safe_nothing_is_texted_first(door, rt, outbox, answer, preference):
    door.prove(outbox)
    door.send(safe_to_text=answer)
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident).where(Resident.channel == "sms")).one()
        assert resident.contact_preference == preference
        assert s.scalars(select(FollowUp)).all() == []
        assert len(s.scalars(select(Referral)).all()) == 2


def test_safety_at_home_gets_the_welcome_but_no_check_in(door, rt, outbox):
    door.prove(outbox)
    door.send(needs=["safety", "food"])
    with rt.db.sessions() as s:
        assert [f.template for f in s.scalars(select(FollowUp))] == ["welcome"]


def test_nothing_is_recorded_before_the_number_is_proven(door, rt, outbox):
    resp = door.post("/canvass/code.json", {"phone": RESIDENT})
    door.visit = resp.get_json()["visit"]
    wrong = door.post("/canvass/check.json", {"visit": door.visit, "phone": RESIDENT, "code": "000000"})
    assert wrong.status_code == 400 and "not the code" in wrong.get_json()["error"]
    resp = door.send()
    assert resp.status_code == 400 and "not proven" in resp.get_json()["error"]
    assert door.send(consent=False).status_code == 400
    with rt.db.sessions() as s:
        assert s.scalars(select(Resident).where(Resident.channel == "sms")).all() == []


def test_another_canvassers_visit_cannot_be_used(door, rt, outbox, app):
    door.prove(outbox)
    add_caseworker(rt, email="dee@example.org", name="Dee", role="canvasser")
    other = app.test_client()
    Staff(other).login("dee@example.org")
    theirs = Door(other, token_in(other.get("/canvass").get_data(as_text=True)))
    theirs.visit = door.visit
    assert theirs.send().status_code == 400


def test_a_canvasser_sees_only_the_form(door, client):
    assert client.get("/inbox/").status_code == 403
    assert client.get("/reports").status_code == 403
    assert client.get("/inbox/campaigns").status_code == 403
    assert client.get("/canvass").status_code == 200


def test_the_form_needs_a_login(client):
    assert client.get("/canvass").status_code == 302
    assert client.post("/canvass/visits.json", json={}).status_code in (400, 401)


def test_staff_see_each_campaigns_card_and_print_it(client, rt, clock):
    campaigns.add(rt.db, clock.now(), code="IA1129", name="Independence Ave", zips=["64124"])
    add_caseworker(rt)
    Staff(client).login()
    page = client.get("/inbox/campaigns").get_data(as_text=True)
    assert "IA1129" in page and 'src="/inbox/campaigns/IA1129/card.png"' in page
    picture = client.get("/inbox/campaigns/IA1129/card.png")
    assert picture.mimetype == "image/png" and picture.data.startswith(b"\x89PNG")
    sheet = client.get("/inbox/campaigns/IA1129/cards.pdf")
    assert sheet.mimetype == "application/pdf" and sheet.data.startswith(b"%PDF")
    assert client.get("/inbox/campaigns/NOPE1/card.png").status_code == 404
