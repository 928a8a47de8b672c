"""A number typed on the web chat is proved with a code before the line uses it (issue 10, critical).

The attack, as tried against a local server: a web visitor gives someone else's number; when that
person texts the line, their conversation landed on the visitor's record, so the visitor read the
caseworker's replies, wrote into the thread, opted the person out with STOP, and redirected the
caseworker's texts by giving another number. Each test below replays one step of it through the
real chat API, the real signed webhook and the real inbox, and checks the resident's line holds.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import RESIDENT, T0
from sqlalchemy import func, select, text
from staff_helpers import Staff, add_caseworker, fast_argon2, open_referral  # noqa: F401

from bot.messaging.phones import valid_e164
from bot.storage.models import AuditEvent, Caseworker, Message, Referral, Resident

ORIGIN = "http://localhost"
ATTACKER = "+18165550166"
SHELTER = "Are you safe to talk? We can get you into the shelter tonight"
CODE_IN = re.compile(r"\b(\d{6})\b")


@pytest.fixture
def sender(outbox):
    return outbox


def post(client, path: str, payload: dict):
    return client.post(path, json=payload, headers={"Origin": ORIGIN})


def say(client, words: str) -> dict:
    resp = post(client, "/chat/messages", {"text": words})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def shown(client) -> list[str]:
    resp = client.get("/chat/messages?after=0")
    assert resp.status_code == 200
    return [m["body"] for m in resp.get_json()["messages"]]


def code_sent_to(outbox, number: str) -> str:
    bodies = outbox.to(number)
    assert bodies, f"no text went to {number}"
    match = CODE_IN.search(bodies[-1])
    assert match, bodies[-1]
    return match.group(1)


def prove(client, outbox, number: str) -> None:
    """The visitor's own phone gets the code and the visitor types it back."""
    assert post(client, "/chat/phone", {"phone": number}).get_json() == {"sent": True}
    code = code_sent_to(outbox, valid_e164(number))
    resp = post(client, "/chat/phone", {"phone": number, "code": code, "consent": True})
    assert resp.status_code == 200 and resp.get_json() == {"saved": True}, resp.get_data(as_text=True)


def staff_reply(app, rt, referral_id: int, words: str) -> None:
    """A caseworker answers the referral from the inbox, as they would."""
    with rt.db.sessions() as s:
        known = s.scalar(select(Caseworker.id).where(Caseworker.email == "replier@example.org"))
    if known is None:
        add_caseworker(rt, email="replier@example.org")
    staff = Staff(app.test_client())
    assert staff.login(email="replier@example.org").status_code == 302
    assert staff.post(f"/inbox/referrals/{referral_id}/reply", body=words).status_code == 302


def record_of(rt, number: str) -> Resident:
    with rt.db.sessions() as s:
        return s.scalars(select(Resident).where(Resident.with_phone(number))).one()


def visitor_of(app, rt, client) -> Resident:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    key = app.session_interface.get_signing_serializer(app).loads(cookie.value)["chat_key"]
    with rt.db.sessions() as s:
        return s.scalars(select(Resident).where(Resident.chat_key == key)).one()


@pytest.fixture
def attacker(app):
    """A stranger's browser that has given the resident's number, as the old page allowed in one step,
    and guessed at a code."""
    client = app.test_client()
    say(client, "hi")
    post(client, "/chat/phone", {"phone": "(816) 555-0123", "consent": True})
    post(client, "/chat/phone", {"phone": "(816) 555-0123", "code": "123456", "consent": True})
    return client


# -- the attack, step by step ------------------------------------------------------------------------


def test_the_residents_texts_never_land_on_the_strangers_record(app, rt, attacker, phone):
    rid = open_referral(phone, rt)
    resident = record_of(rt, RESIDENT)
    assert resident.channel == "sms" and resident.chat_key is None
    visitor = visitor_of(app, rt, attacker)
    assert visitor.phone is None and visitor.linked_resident_id is None
    with rt.db.sessions() as s:
        assert s.get(Referral, rid).resident_id == resident.id
        assert (
            s.scalar(
                select(func.count(Message.id)).where(
                    Message.resident_id == visitor.id, Message.channel != "web", Message.kind != "code"
                )
            )
            == 0
        )


def test_the_stranger_cannot_read_the_caseworkers_replies(app, rt, attacker, phone, outbox):
    rid = open_referral(phone, rt)
    staff_reply(app, rt, rid, SHELTER)
    assert SHELTER in outbox.to(RESIDENT)
    assert SHELTER not in shown(attacker)
    assert all(SHELTER not in body for to, body in outbox.sent if to != RESIDENT)


def test_the_strangers_chat_text_never_shows_in_the_residents_thread(app, rt, attacker, phone):
    rid = open_referral(phone, rt)
    say(attacker, "It is me, text me at my other number please")
    add_caseworker(rt)
    staff = Staff(app.test_client())
    staff.login()
    page = staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    assert "talk to a person" in page and "my other number" not in page


def test_stop_from_the_web_does_not_opt_the_resident_out(app, rt, attacker, phone, outbox):
    rid = open_referral(phone, rt)
    say(attacker, "STOP")
    assert not record_of(rt, RESIDENT).opted_out
    staff_reply(app, rt, rid, SHELTER)
    assert outbox.to(RESIDENT)[-1] == SHELTER


def test_giving_another_number_does_not_redirect_the_residents_texts(app, rt, attacker, phone, outbox):
    rid = open_referral(phone, rt)
    post(attacker, "/chat/phone", {"phone": ATTACKER, "consent": True})  # the old one-step request
    staff_reply(app, rt, rid, SHELTER)
    assert SHELTER not in outbox.to(ATTACKER) and outbox.to(RESIDENT)[-1:] == [SHELTER]
    prove(attacker, outbox, ATTACKER)  # even a number the stranger really holds
    staff_reply(app, rt, rid, "Can you talk now?")
    assert outbox.to(RESIDENT)[-1] == "Can you talk now?"
    assert not {SHELTER, "Can you talk now?"} & {*outbox.to(ATTACKER), *shown(attacker)}
    assert record_of(rt, RESIDENT).phone == RESIDENT


def test_an_unproven_number_gets_nothing_but_its_code(app, rt, attacker, outbox):
    say(attacker, "talk to a person")
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
    staff_reply(app, rt, rid, "Hi, this is Ana from the team.")
    texts = outbox.to(RESIDENT)
    assert all(CODE_IN.search(t) and "Northeast Help Line" in t for t in texts), texts  # codes only
    assert "Hi, this is Ana from the team." in shown(attacker)  # the visitor's own chat still gets it


def test_an_old_one_step_request_only_sends_a_code(app, rt, client, outbox):
    say(client, "I need food")
    resp = post(client, "/chat/phone", {"phone": "(816) 555-0177", "consent": True})
    assert resp.status_code == 200 and resp.get_json() == {"sent": True}
    visitor = visitor_of(app, rt, client)
    assert visitor.phone is None and visitor.linked_resident_id is None and visitor.phone_verified_at is None
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count(Resident.id)).where(Resident.channel != "web")) == 0
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "consent.recorded")).all() == []


# -- proving a number ---------------------------------------------------------------------------------


def test_a_proved_number_is_linked_not_merged(app, rt, client, phone, outbox):
    phone.text("hi")  # the number already has its own SMS conversation
    say(client, "talk to a person")
    prove(client, outbox, "816-555-0123")
    visitor, own = visitor_of(app, rt, client), record_of(rt, RESIDENT)
    assert (visitor.phone, visitor.linked_resident_id, visitor.phone_verified_at) == (None, own.id, T0)
    assert visitor.consent_texts and visitor.consent_recorded_at == T0 and own.consent_recorded_at == T0
    with rt.db.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "consent.recorded")).one()
        rid = s.scalars(select(Referral.id).where(Referral.resident_id == visitor.id)).one()
    assert event.resident_id == visitor.id and event.detail == {"channel": "web", "linked_resident_id": own.id}
    # The caseworker's text for the web referral goes to the proved number and shows in the chat.
    staff_reply(app, rt, rid, "Hi, this is Ana. I will call at 3.")
    assert outbox.to(RESIDENT)[-1] == "Hi, this is Ana. I will call at 3."
    assert "Hi, this is Ana. I will call at 3." in shown(client)
    # Texts from the number stay in its own record; the chat page never shows them or their answers.
    phone.text("my landlord changed the locks")
    with rt.db.sessions() as s:
        inbound = [m for m in s.scalars(select(Message)) if m.body == "my landlord changed the locks"]
    assert [m.resident_id for m in inbound] == [own.id]
    assert shown(client) == ["Hi, this is Ana. I will call at 3."]


def test_a_new_number_gets_a_record_of_its_own_on_proof(app, rt, client, outbox):
    say(client, "hi")
    prove(client, outbox, "+18165550177")
    own = record_of(rt, "+18165550177")
    assert own.channel == "sms" and own.chat_key is None and visitor_of(app, rt, client).linked_resident_id == own.id


def test_the_code_text_is_discreet_and_in_the_visitors_language(app, rt, client, outbox):
    say(client, "español")
    post(client, "/chat/phone", {"phone": "816 555 0177"})
    (body,) = outbox.to("+18165550177")
    assert re.fullmatch(r"Su código para la Línea de Ayuda del Noreste es \d{6}", body)
    other = app.test_client()
    post(other, "/chat/phone", {"phone": "816 555 0178"})
    assert re.fullmatch(r"Your code for the Northeast Help Line is \d{6}", outbox.to("+18165550178")[0])


def test_the_code_is_stored_nowhere_in_the_clear(app, rt, client, outbox, monkeypatch):
    monkeypatch.setattr("bot.messaging.verify.secrets.randbelow", lambda _n: 493817)  # digits found nowhere else
    say(client, "hi")
    post(client, "/chat/phone", {"phone": "+18165550177"})
    code = code_sent_to(outbox, "+18165550177")
    assert code == "493817"
    with rt.db.engine.connect() as conn:
        for table in ("phone_codes", "messages", "audit_events", "residents"):
            dump = " ".join(str(v) for row in conn.execute(text(f"SELECT * FROM {table}")) for v in row)
            assert code not in dump, table
    with rt.db.sessions() as s:
        stored = s.scalars(select(Message.body).where(Message.kind == "code")).one()
    assert stored == "Your code for the Northeast Help Line is ••••••"


def test_a_wrong_code_counts_and_five_end_the_code(app, rt, client, outbox):
    say(client, "hi")
    post(client, "/chat/phone", {"phone": "+18165550177"})
    right = code_sent_to(outbox, "+18165550177")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        resp = post(client, "/chat/phone", {"phone": "+18165550177", "code": wrong, "consent": True})
        assert resp.status_code == 400 and "not the code" in resp.get_json()["error"]
    resp = post(client, "/chat/phone", {"phone": "+18165550177", "code": right, "consent": True})
    assert resp.status_code == 429 and "new one" in resp.get_json()["error"]
    assert visitor_of(app, rt, client).linked_resident_id is None
    with rt.db.sessions() as s:
        assert s.execute(text("SELECT attempts, confirmed_at FROM phone_codes")).one() == (5, None)


def test_a_code_expires_after_ten_minutes(app, rt, client, clock, outbox):
    say(client, "hi")
    post(client, "/chat/phone", {"phone": "+18165550177"})
    clock.set(T0 + timedelta(minutes=10))
    resp = post(
        client, "/chat/phone", {"phone": "+18165550177", "code": code_sent_to(outbox, "+18165550177"), "consent": True}
    )
    assert resp.status_code == 400 and "expired" in resp.get_json()["error"]
    prove(client, outbox, "+18165550177")  # a new code works


def test_a_code_works_once_for_the_visitor_and_number_it_was_sent_for(app, rt, client, outbox):
    say(client, "hi")
    post(client, "/chat/phone", {"phone": "+18165550177"})
    code = code_sent_to(outbox, "+18165550177")
    thief = app.test_client()
    say(thief, "hi")
    resp = post(thief, "/chat/phone", {"phone": "+18165550177", "code": code, "consent": True})
    assert resp.status_code == 400 and "ask for one first" in resp.get_json()["error"]
    resp = post(client, "/chat/phone", {"phone": "+18165550178", "code": code, "consent": True})
    assert resp.status_code == 400
    assert post(client, "/chat/phone", {"phone": "+18165550177", "code": code, "consent": True}).status_code == 200
    again = post(client, "/chat/phone", {"phone": "+18165550177", "code": code, "consent": True})
    assert again.status_code == 429  # used


def test_codes_are_capped_per_number_whoever_asks(app, rt, clock, outbox):
    visitors = [app.test_client() for _ in range(4)]
    codes = [post(v, "/chat/phone", {"phone": RESIDENT}).status_code for v in visitors]
    assert codes == [200, 200, 200, 429]
    assert len(outbox.to(RESIDENT)) == 3
    assert "enough codes" in post(visitors[3], "/chat/phone", {"phone": RESIDENT}).get_json()["error"]
    clock.set(T0 + timedelta(days=1))
    assert post(visitors[3], "/chat/phone", {"phone": RESIDENT}).status_code == 200


def test_codes_are_capped_per_visitor(app, client, outbox):
    numbers = [f"+1816555017{n}" for n in range(6)]
    codes = [post(client, "/chat/phone", {"phone": n}).status_code for n in numbers]
    assert codes == [200] * 5 + [429]
    assert outbox.to(numbers[5]) == []


def test_an_opted_out_number_gets_no_code_and_the_page_cannot_tell(app, rt, phone, client, outbox):
    phone.text("STOP")
    sent_before = len(outbox.sent)
    resp = post(client, "/chat/phone", {"phone": RESIDENT})
    assert resp.status_code == 200 and resp.get_json() == {"sent": True}  # as for any number
    assert len(outbox.sent) == sent_before
    with rt.db.sessions() as s:
        assert s.scalars(select(Message.status).where(Message.kind == "code")).one() == "skipped_opted_out"


@pytest.mark.parametrize(
    "number, why",
    [
        ("+44 20 7946 0958", "only text numbers in US"),  # another country
        ("+1 876 555 0123", "only text numbers in US"),  # Jamaica shares +1
        ("+882 1360 0001", "only text numbers in US"),  # an international network
        ("+1 900 555 0123", "premium-rate"),
        ("+1 500 555 0006", "personal"),
        ("+1 800 555 0123", "toll-free"),
        ("+1 816 555 012", "not a valid"),
    ],
)
def test_only_a_persons_number_in_an_allowed_country_is_texted(app, rt, client, outbox, number, why):
    resp = post(client, "/chat/phone", {"phone": number, "consent": True})
    assert resp.status_code == 400 and why in resp.get_json()["error"], resp.get_json()
    assert outbox.sent == []
    with rt.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM phone_codes")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM residents WHERE phone IS NOT NULL")).scalar() == 0


def test_allowed_countries_widens_the_list(env, clock, outbox):
    from bot import create_app
    from bot.config import load_settings

    app = create_app(load_settings({**env, "ALLOWED_COUNTRIES": "US, ca"}), clock=clock, sender=outbox)
    try:
        client = app.test_client()
        assert post(client, "/chat/phone", {"phone": "+1 416 555 0123"}).status_code == 200
        assert post(client, "/chat/phone", {"phone": "+44 20 7946 0958"}).status_code == 400
    finally:
        app.extensions["peaceline"].db.dispose()


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"phone": "8165550177", "code": "123456"}, "consent"),
        ({"phone": "8165550177", "code": "123456", "consent": "true"}, "consent"),
        ({"phone": "8165550177", "code": 123456, "consent": True}, "code must be a string"),
        ({"phone": "8165550177", "code": "12345", "consent": True}, "6 digits"),
        ({"phone": "8165550177", "code": "１２３４５６", "consent": True}, "6 digits"),
        ({"phone": "8165550177", "code": "x" * 21, "consent": True}, "longer than 20"),
        ({"phone": "8165550177", "code": "123456", "consent": True}, "ask for one first"),
    ],
)
def test_bad_confirmations_get_400_with_a_reason(client, payload, reason):
    resp = post(client, "/chat/phone", payload)
    assert resp.status_code == 400 and reason in resp.get_json()["error"], resp.get_json()


# -- leave now ------------------------------------------------------------------------------------------


def test_leave_revokes_the_key_so_a_copied_cookie_reads_and_writes_nothing(app, rt, client, outbox):
    say(client, "talk to a person")
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
    staff_reply(app, rt, rid, SHELTER)
    name = app.config["SESSION_COOKIE_NAME"]
    copied = client.get_cookie(name).value
    visitor = visitor_of(app, rt, client)
    assert post(client, "/chat/leave", {}).status_code == 204

    thief = app.test_client()
    thief.set_cookie(name, copied)
    assert shown(thief) == []
    say(thief, "it's me again")
    assert post(thief, "/chat/phone", {"phone": ATTACKER}).status_code == 200  # a fresh visitor's request
    with rt.db.sessions() as s:
        kept = s.get(Resident, visitor.id)
        assert kept.chat_key is None
        assert [
            m.body
            for m in s.scalars(select(Message).where(Message.resident_id == visitor.id, Message.direction == "in"))
        ] == ["talk to a person"]
        assert s.get(Referral, rid).resident_id == visitor.id  # the case stays for the caseworkers
        assert s.scalars(select(AuditEvent.resident_id).where(AuditEvent.action == "chat.left")).one() == visitor.id
    assert visitor_of(app, rt, thief).id != visitor.id
    staff_reply(app, rt, rid, "Still there?")
    assert "Still there?" not in shown(thief)


# -- where a proved number is used --------------------------------------------------------------------


def test_the_thread_says_whether_a_web_visitors_number_is_verified(app, rt, client, outbox):
    say(client, "talk to a person")
    post(client, "/chat/phone", {"phone": "+18165550177"})  # asked for a code, never typed it
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
    add_caseworker(rt)
    staff = Staff(app.test_client())
    staff.login()
    page = staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    assert 'id="number-unverified"' in page and "+18165550177" not in page and 'id="number-verified"' not in page
    prove(client, outbox, "+18165550177")
    page = staff.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    assert 'id="number-verified"' in page and 'href="tel:+18165550177"' in page
    assert "their texts back arrive in the number's own SMS thread" in page


def test_a_check_in_for_a_web_referral_goes_to_the_proved_number(app, rt, client, outbox):
    from bot.messaging.dispatch import dispatch_due
    from bot.storage.models import FollowUp

    say(client, "talk to a person")
    prove(client, outbox, RESIDENT)
    visitor = visitor_of(app, rt, client)
    with rt.db.transaction() as s:
        rid = s.scalars(select(Referral.id)).one()
        s.add(FollowUp(resident_id=visitor.id, referral_id=rid, template="checkin", due_at=T0, created_at=T0))
    (done,) = dispatch_due(rt, T0)
    assert (done.status, done.to) == ("sent", "+1816•••0123")
    assert outbox.to(RESIDENT)[-1].startswith("Hi, it's the Northeast help line checking in")


def test_an_opt_out_reported_for_a_proved_number_lands_on_the_numbers_own_record(app, rt, client, outbox):
    from conftest import sign

    say(client, "talk to a person")
    prove(client, outbox, RESIDENT)
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
    staff_reply(app, rt, rid, "Hi, this is Ana.")
    with rt.db.sessions() as s:
        sid = s.scalars(select(Message.provider_sid).where(Message.kind == "caseworker")).one()
    status = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert (
        client.post("/sms/status", data=status, headers={"X-Twilio-Signature": sign("/sms/status", status)}).status_code
        == 204
    )
    assert record_of(rt, RESIDENT).opted_out and not visitor_of(app, rt, client).opted_out
    staff_reply(app, rt, rid, "Are you there?")  # the number is off; the chat page still gets it
    assert outbox.to(RESIDENT)[-1] == "Hi, this is Ana." and "Are you there?" in shown(client)
