"""Stay with the person: crisis holds, "don't text me", violence and loss, and promises that are true.

Everything here goes through the real signed webhook (or the web chat API) and the real database;
the sender is the test Outbox, which hands texts to "Twilio" (status queued) unless told otherwise.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Phone, twiml_bodies
from sqlalchemy import select
from staff_helpers import add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.casework import cases
from bot.config import load_settings
from bot.messaging import notify
from bot.messaging.dispatch import dispatch_due
from bot.messaging.scheduler import tick
from bot.storage.models import FollowUp, Message, Referral, Resident

ON_CALL = "+18165550190"
# Wednesday 2 Dec 2026, 02:00 in Kansas City: nobody on duty; the office opens at 9.
WEDNESDAY_2AM = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
# Friday 4 Dec 2026, 21:00 in Kansas City: the next working day is Monday.
FRIDAY_9PM = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


@pytest.fixture
def env(env):
    return {**env, "ESCALATION_PHONES": ON_CALL}


@pytest.fixture
def sender(outbox):
    return outbox


def texts(phone: Phone, *bodies: str) -> list[list[str]]:
    """Each text's replies, letting each response finish as a real server does."""
    out = []
    for body in bodies:
        resp = phone.send(body)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        out.append(twiml_bodies(resp.get_data(as_text=True)))
        resp.close()
    return out


def referral(rt) -> Referral:
    with rt.db.sessions() as s:
        return s.scalars(select(Referral).order_by(Referral.id.desc())).first()


# -- the crisis hold --------------------------------------------------------------------------------------


def test_a_crisis_hold_answers_every_text_without_a_menu_and_raises_the_case_each_time(rt, phone, clock):
    ana = add_caseworker(rt)
    (first,) = texts(phone, "i want to kill myself")
    assert first == [
        "Call or text 988 now. Someone is there to talk, day or night. A person from our team will text you soon."
    ]
    case = referral(rt)
    assert (case.urgent, case.crisis_kind, case.reason) == (True, "self_harm", "crisis:self_harm")
    cases.open_thread(rt, case.id, ana)  # the caseworker reads it: no longer unread
    assert not referral(rt).unread
    for body in ("i dont want to call anyone", "nobody cares", "1", "ok"):
        (reply,) = texts(phone, body)
        assert reply == [
            "We are here. Keep texting us if you want. You can also text 988, day or night. "
            "A person from our team will text you soon."
        ], body
        assert referral(rt).unread, f"{body!r} raised the case again"
    (menu,) = texts(phone, "MENU")
    assert "What do you need help with?" in menu[-1]
    (food,) = texts(phone, "2")
    assert "Food help." in food[0]


def test_a_person_in_a_crisis_hold_is_never_silenced_by_the_loop_guard(rt, phone, clock):
    texts(phone, "he is hitting me")
    for n in range(20):  # twenty texts in the same minute
        (reply,) = texts(phone, f"please help {n}")
        assert reply and "800-799-7233" in reply[0], n
    with rt.db.sessions() as s:
        assert s.scalars(select(Message.status).where(Message.status == "loop_guard")).all() == []


def test_the_loop_guard_still_stops_a_robot_that_is_not_in_a_crisis(rt, phone, clock):
    replies = texts(phone, *[f"hello {n}" for n in range(12)])
    assert replies[-1] == []


def test_a_caseworker_taking_the_case_ends_the_hold_and_her_texts_go_to_them(rt, phone, clock):
    ana = add_caseworker(rt)
    texts(phone, "quiero morir")
    cases.claim(rt, referral(rt).id, ana)
    assert texts(phone, "sigo aquí") == [[]]  # relayed to the caseworker, no bot reply


def test_closing_the_case_ends_the_hold(rt, phone, clock):
    ana = add_caseworker(rt)
    texts(phone, "i want to end my life")
    cases.close(rt, referral(rt).id, ana, "no_longer_needed")
    (reply,) = texts(phone, "thank you")
    assert not any("We are here" in r for r in reply)


# -- "don't text me": do not text first ---------------------------------------------------------------


def test_dont_text_me_with_a_reason_cancels_the_check_in_and_stops_texts_the_line_would_start(rt, phone, clock, outbox):
    ana = add_caseworker(rt)
    texts(phone, "I need food", "64124", "no", "yes")  # places, no person, a check-in in 3 days
    with rt.db.sessions() as s:
        assert s.scalars(select(FollowUp.status)).all() == ["pending"]
    (ack,) = texts(phone, "please dont text me back he checks my phone")
    assert ack == ["OK. We won't text you first. Text us any time."]
    with rt.db.sessions() as s:
        assert s.scalars(select(FollowUp.status)).all() == ["cancelled"]
        resident = s.scalars(select(Resident)).one()
        assert (resident.contact_preference, resident.opted_out) == ("reply_only", False)
    clock.set(clock.now() + timedelta(days=3))
    assert dispatch_due(rt) == []
    # She texts again: she is answered, and within a day of her text a caseworker may answer too.
    (reply,) = texts(phone, "i need a lawyer")
    assert "Free or low-cost legal help:" in "\n".join(reply)
    case = referral(rt)
    assert cases.reply(rt, case.id, ana, "Hi, this is Ana from the help line.").status == "queued"
    clock.set(clock.now() + timedelta(hours=25))
    refused = cases.reply(rt, case.id, ana, "Checking on you.")
    assert refused.status == "held_contact_preference"
    assert [body for _, body in outbox.sent] == ["Hi, this is Ana from the help line."]


def test_no_me_escriba_en_espanol(rt, phone, clock):
    texts(phone, "necesito comida", "64124", "no", "sí")
    (ack,) = texts(phone, "no me escriba, él revisa mi teléfono")
    assert ack == ["Está bien. No le escribiremos primero. Escríbanos cuando quiera."]
    with rt.db.sessions() as s:
        assert s.scalars(select(FollowUp.status)).all() == ["cancelled"]


def test_a_check_in_scheduled_later_is_held_not_sent(rt, phone, clock, outbox):
    ana = add_caseworker(rt)
    texts(phone, "talk to a person", "dont text me, my husband reads my texts")
    case = referral(rt)
    tomorrow = (clock.now() + timedelta(days=2)).astimezone(rt.settings.program_timezone)
    cases.schedule_followup(rt, case.id, ana, "checkin", tomorrow.date().isoformat(), "10:00")
    clock.set(clock.now() + timedelta(days=2, hours=1))
    done = dispatch_due(rt)
    assert [d.status for d in done] == ["held_contact_preference"]
    assert outbox.sent == []


def test_cries_for_help_are_not_opt_outs(rt, phone, clock):
    for body in ("he won't leave me alone", "stop hitting me"):
        (reply,) = texts(phone, body)
        assert "800-799-7233" in reply[0]
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident)).one()
        assert (resident.opted_out, resident.contact_preference) == (False, "any")


# -- promises that are true ------------------------------------------------------------------------------


def test_at_night_the_person_on_call_is_told_before_the_answer_says_so(rt, phone, clock, outbox):
    clock.set(WEDNESDAY_2AM)
    (reply,) = texts(phone, "i want to kill myself")
    assert reply == ["Call or text 988 now. Someone is there to talk, day or night. The person on call has been told."]
    case = referral(rt)
    assert outbox.to(ON_CALL) == [notify.notice_text(rt, case.id, urgent=True)]
    assert case.on_call_told_at == WEDNESDAY_2AM and case.notified_at == WEDNESDAY_2AM
    with rt.db.sessions() as s:  # the stored reply is the one that left
        stored = s.scalars(select(Message.body).where(Message.direction == "out", Message.kind == "reply")).all()
    assert stored == reply
    (again,) = texts(phone, "i dont want to call anyone")
    assert again[0].endswith("The person on call has been told.")
    assert len(outbox.to(ON_CALL)) == 1  # told once, not at every text


def test_at_night_a_text_that_did_not_reach_twilio_is_never_called_told(env, clock, caplog):
    """The log sender (no Twilio account) records the escalation but hands nothing to Twilio."""
    app = create_app(load_settings(env), clock=clock)
    rt = app.extensions["peaceline"]
    try:
        clock.set(FRIDAY_9PM)
        with caplog.at_level(logging.WARNING):
            (reply,) = texts(Phone(app.test_client()), "he is going to kill me")
        assert reply == [
            "Call 911 now if you are in danger or someone is hurt. A person from our team will text you Monday morning."
        ]
        assert any("notified_nobody" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert app.test_client().get("/healthz").get_json()["attention"] == 1
    finally:
        rt.db.dispose()


def test_an_urgent_referral_that_told_nobody_is_logged_once(env, clock, caplog):
    """At once when the text to the person on call did not reach Twilio (here: the log sender); by the
    scheduler when it had to wait for the batch window and then failed too; never twice for one."""
    app = create_app(load_settings(env), clock=clock)
    try:
        clock.set(WEDNESDAY_2AM)
        with caplog.at_level(logging.WARNING):
            texts(Phone(app.test_client(), "+18165550131"), "he is going to kill me", "are you there")
            texts(Phone(app.test_client(), "+18165550132"), "he is hitting me")  # inside the batch window: waits
            clock.set(WEDNESDAY_2AM + timedelta(hours=1))
            tick(app.extensions["peaceline"])
            tick(app.extensions["peaceline"])
        warned = [r.getMessage().split()[1] for r in caplog.records if "notified_nobody" in r.getMessage()]
        assert sorted(warned) == ["referral=1", "referral=2"]
    finally:
        app.extensions["peaceline"].db.dispose()


def test_without_escalation_phones_at_night_the_next_working_day_by_name(env, clock, outbox, caplog):
    app = create_app(load_settings({**env, "ESCALATION_PHONES": ""}), clock=clock, sender=outbox)
    rt = app.extensions["peaceline"]
    try:
        clock.set(FRIDAY_9PM)
        with caplog.at_level(logging.WARNING):
            (reply,) = texts(Phone(app.test_client()), "me quiero morir")
        # by SMS, á í ó ú go unaccented when that saves a segment (ñ is GSM-7 and stays)
        assert reply[0].endswith("Una persona de nuestro equipo le escribira el lunes en la mañana.")
        assert app.test_client().get("/healthz").get_json()["attention"] == 1
        warnings = [r for r in caplog.records if "notified_nobody" in r.getMessage()]
        assert len(warnings) == 1
        texts(Phone(app.test_client()), "sigo aquí")  # a hold text raises the case: no second warning
        assert len([r for r in caplog.records if "notified_nobody" in r.getMessage()]) == 1
    finally:
        rt.db.dispose()


def test_holidays_are_not_working_days(env, clock, outbox):
    app = create_app(
        load_settings({**env, "ESCALATION_PHONES": "", "HOLIDAYS": "2026-12-24,2026-12-25"}), clock=clock, sender=outbox
    )
    rt = app.extensions["peaceline"]
    try:
        clock.set(datetime(2026, 12, 24, 0, 0, tzinfo=UTC))  # Wednesday 23 Dec, 18:00
        (reply,) = texts(Phone(app.test_client()), "talk to a person")
        assert "A person from our team will text you Monday morning." in reply[-1]
    finally:
        rt.db.dispose()


def test_by_day_someone_on_duty_means_soon_and_no_text_to_the_person_on_call(rt, phone, clock, outbox):
    add_caseworker(rt)
    (reply,) = texts(phone, "he is hitting me")
    assert reply[0].endswith("A person from our team will text you soon.")
    assert outbox.to(ON_CALL) == []
    assert referral(rt).notified_at is not None
    assert phone.client.get("/healthz").get_json()["attention"] == 0


def test_escalations_are_rate_limited_and_batched(app, rt, client, clock, outbox):
    clock.set(WEDNESDAY_2AM)
    first = Phone(client, "+18165550121")
    (reply,) = texts(first, "i want to kill myself")
    assert reply[0].endswith("The person on call has been told.")
    others = [Phone(client, f"+1816555013{n}") for n in range(5)]
    for other in others:  # within the batch window: nothing more to the on-call phone yet
        (reply,) = texts(other, "he is hitting me")
        assert reply[0].endswith("A person from our team will text you today after 9am.")
    assert len(outbox.to(ON_CALL)) == 1
    clock.set(WEDNESDAY_2AM + timedelta(minutes=6))
    tick(app.extensions["peaceline"])
    assert len(outbox.to(ON_CALL)) == 2
    assert outbox.to(ON_CALL)[-1].startswith("Peaceline: 5 new referrals (5 urgent) need a person.")
    (reply,) = texts(others[0], "are you there")  # now it is true: the person on call was told
    assert reply[0].endswith("The person on call has been told.")


def test_web_chat_crises_never_text_the_person_on_call_one_by_one(app, rt, clock, outbox):
    clock.set(WEDNESDAY_2AM)
    for n in range(30):
        visitor = app.test_client()
        resp = visitor.post(
            "/chat/messages",
            json={"text": "he is going to kill me"},
            headers={"Origin": "http://localhost"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
        assert resp.status_code == 200
        replies = resp.get_json()["replies"]
        assert "Keep this page open" in replies[0] and "text you" not in replies[0]
    assert outbox.to(ON_CALL) == []
    clock.set(WEDNESDAY_2AM + timedelta(minutes=1))
    tick(app.extensions["peaceline"])
    assert outbox.to(ON_CALL) == [
        "Peaceline: 30 new referrals (30 urgent) need a person. Open the inbox: https://peaceline.example.org/inbox/"
    ]


# -- web chat without a number --------------------------------------------------------------------------


def test_a_web_visitor_without_a_number_is_offered_the_page_or_a_number(app, rt, clock):
    add_caseworker(rt)
    visitor = app.test_client()

    def say(text):
        return visitor.post(
            "/chat/messages",
            json={"text": text},
            headers={"Origin": "http://localhost"},
        ).get_json()["replies"]

    reply = say("talk to a person")
    assert reply[-1] == (
        "OK. Keep this page open: a person will answer here soon. Or add your number to get a "
        "text. In danger, call 911."
    )
    say("MENU")
    say("I need food")
    say("64124")
    bye = say("2")  # no person: and no check-in offer, since we cannot text them
    assert bye == ["OK. Text MENU any time you need help. In danger, call 911."]
    with rt.db.sessions() as s:
        assert s.scalars(select(FollowUp)).all() == []


def test_the_inbox_shows_the_crisis_kind_and_do_not_text_first(app, rt, phone, clock):
    from staff_helpers import Staff

    add_caseworker(rt)
    texts(phone, "he hits me", "please dont text me back he checks my phone")
    staff = Staff(app.test_client())
    staff.login()
    queue = staff.get("/inbox/").get_data(as_text=True)
    assert "Abuse" in queue and "Do not text first" in queue
    thread = staff.get(f"/inbox/referrals/{referral(rt).id}").get_data(as_text=True)
    assert "Do not text first" in thread and "24 hours of their own last text" in thread
