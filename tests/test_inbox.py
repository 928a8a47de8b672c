"""The web inbox through the real app: login on every URL, the queue, a whole case from claim to close."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest import RESIDENT, Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2, open_referral  # noqa: F401 (autouse fixture)

from bot.cli import main
from bot.storage.models import AuditEvent, FollowUp, Message, Note, Referral

STAFF_PREFIXES = ("/inbox", "/reports")


@pytest.fixture
def ana(rt) -> int:
    return add_caseworker(rt)


@pytest.fixture
def staff(client, ana) -> Staff:
    staff = Staff(client)
    assert staff.login().status_code == 302
    return staff


def referral(rt, referral_id: int) -> Referral:
    with rt.db.sessions() as s:
        return s.get(Referral, referral_id)


def rows(rt, model, *where) -> list:
    with rt.db.sessions() as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


def page(resp) -> str:
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


# -- login everywhere ---------------------------------------------------------------------------------


def staff_urls(app) -> list[tuple[str, str, str]]:
    """Every (endpoint, method, url) under /inbox and /reports, placeholders filled with 1."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(STAFF_PREFIXES) or rule.endpoint.endswith(".static"):
            continue  # static CSS and JS hold nothing private; the login page itself needs them
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **{name: 1 for name in rule.arguments})
        out += [(rule.endpoint, method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def test_every_inbox_and_reports_url_needs_a_login(app, client):
    app.config["WTF_CSRF_ENABLED"] = False  # so it is the login check, not CSRF, that refuses the POSTs
    urls = staff_urls(app)
    assert {"inbox.queue", "inbox.thread", "inbox.reply", "inbox.admin.staff"} <= {e for e, _, _ in urls}
    for endpoint, method, url in urls:
        resp = client.open(url, method=method)
        if url.endswith(".json"):
            assert resp.status_code == 401, (endpoint, method)
        else:
            assert resp.status_code == 302, (endpoint, method, resp.status_code)
            assert resp.headers["Location"].startswith("/login?next="), endpoint


def test_staff_pages_are_not_cached_and_allow_only_this_sites_scripts(staff):
    resp = staff.get("/inbox/")
    assert resp.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "http" not in page(resp).split("</head>")[0]  # nothing loaded from another host


# -- the queue ----------------------------------------------------------------------------------------------


def test_the_queue_lists_open_referrals_urgent_first_with_the_phone_masked(staff, rt, client, clock):
    calm = open_referral(Phone(client, "+18165550124"), rt)
    clock.set(clock.now() + timedelta(minutes=12))
    urgent = open_referral(Phone(client, "+18165550125"), rt, "he is hitting me")
    html = page(staff.get("/inbox/"))
    assert html.index(f"#{urgent}") < html.index(f"#{calm}")
    assert "12 min" in html and "just now" in html and "Urgent" in html and "New" in html
    assert "+1816•••0124" in html and "+18165550124" not in html
    assert "Nobody has it yet" in html and html.count('class="dot"') == 2


def test_queue_json_returns_the_rendered_rows_for_the_poll(staff, rt, phone):
    empty = staff.get("/inbox/queue.json").get_json()
    assert empty["count"] == 0 and "Nothing here" in empty["html"]
    rid = open_referral(phone, rt)
    data = staff.get("/inbox/queue.json").get_json()
    assert (data["count"], data["unread"]) == (1, 1) and f"#{rid}" in data["html"]
    assert "+1816•••0123" in data["html"] and RESIDENT not in data["html"]


def test_queue_tabs_show_mine_and_closed(staff, rt, phone, ana):
    rid = open_referral(phone, rt)
    assert f"#{rid}" not in page(staff.get("/inbox/?show=mine"))
    staff.post(f"/inbox/referrals/{rid}/claim")
    assert f"#{rid}" in page(staff.get("/inbox/?show=mine"))
    staff.post(f"/inbox/referrals/{rid}/close", outcome="no_longer_needed")
    assert f"#{rid}" in page(staff.get("/inbox/?show=closed"))
    assert f"#{rid}" not in page(staff.get("/inbox/"))


# -- one case, start to finish -------------------------------------------------------------------------------


def test_claim_reply_and_close_a_referral(staff, rt, phone, ana, clock):
    rid = open_referral(phone, rt)
    with rt.db.transaction() as s:  # the resident had texted MENU, back to the bot
        s.get(Referral, rid).bot_resumed_at = clock.now()
        s.add(
            FollowUp(
                resident_id=s.get(Referral, rid).resident_id,
                referral_id=rid,
                template="checkin",
                due_at=clock.now() + timedelta(days=3),
                created_at=clock.now(),
            )
        )

    assert staff.post(f"/inbox/referrals/{rid}/claim").status_code == 302
    claimed = referral(rt, rid)
    assert (claimed.status, claimed.assigned_to_id, claimed.claimed_at) == ("claimed", ana, clock.now())

    clock.set(clock.now() + timedelta(minutes=5))
    staff.post(f"/inbox/referrals/{rid}/reply", body="Hi, this is Ana from the help line. How can I help?")
    sent = rows(rt, Message, Message.kind == "caseworker")
    assert len(sent) == 1
    assert (sent[0].direction, sent[0].caseworker_id, sent[0].referral_id, sent[0].status) == (
        "out",
        ana,
        rid,
        "logged",
    )
    contacted = referral(rt, rid)
    assert (contacted.status, contacted.contacted_at, contacted.bot_resumed_at) == ("contacted", clock.now(), None)

    # the hand-off is open again: the resident's answer goes to Ana, not to the bot
    assert phone.text("I need help with my light bill") == []
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert "I need help with my light bill" in html and "How can I help?" in html
    assert html.index("How can I help?") < html.index("I need help with my light bill")

    staff.post(f"/inbox/referrals/{rid}/close", outcome="got_help")
    closed = referral(rt, rid)
    assert (closed.status, closed.outcome, closed.closed_at) == ("closed", "got_help", clock.now())
    assert [f.status for f in rows(rt, FollowUp, FollowUp.referral_id == rid)] == ["cancelled"]
    changes = rows(rt, AuditEvent, AuditEvent.action == "referral.status")
    assert [(e.detail["from"], e.detail["to"], e.actor_id) for e in changes] == [
        ("new", "claimed", ana),
        ("claimed", "contacted", ana),
        ("contacted", "closed", ana),
    ]


def test_the_thread_shows_the_full_phone_and_every_view_is_audited_and_marks_it_read(staff, rt, phone, ana):
    rid = open_referral(phone, rt)
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert RESIDENT in html and "talk to a person" in html
    assert "A person from our team will text you" in html  # the bot's replies are in the thread too
    page(staff.get(f"/inbox/referrals/{rid}"))
    views = rows(rt, AuditEvent, AuditEvent.action == "thread.viewed")
    resident_id = referral(rt, rid).resident_id
    assert [(v.actor_id, v.referral_id, v.resident_id) for v in views] == [(ana, rid, resident_id)] * 2
    assert referral(rt, rid).unread is False


def test_a_residents_script_is_shown_as_text_never_run(staff, rt, phone):
    rid = open_referral(phone, rt)
    staff.post(f"/inbox/referrals/{rid}/claim")
    phone.text('<script>alert("x")</script><img src=x onerror=alert(1)>')
    staff.post(f"/inbox/referrals/{rid}/notes", body="<b>note</b><script>bad()</script>")
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert "<script>alert" not in html and "<img src=x" not in html and "<script>bad" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "&lt;b&gt;note&lt;/b&gt;" in html


def test_a_second_claim_is_refused_with_who_has_it(staff, rt, phone, app, ana):
    rid = open_referral(phone, rt)
    add_caseworker(rt, email="ben@example.org", name="Ben")
    ben = Staff(app.test_client())
    ben.login("ben@example.org")
    staff.post(f"/inbox/referrals/{rid}/claim")
    ben.post(f"/inbox/referrals/{rid}/claim")
    assert "Ana already has this referral" in page(ben.get(f"/inbox/referrals/{rid}"))
    assert referral(rt, rid).assigned_to_id == ana


def test_a_reply_to_an_opted_out_resident_is_not_sent_and_the_page_says_so(staff, rt, phone):
    rid = open_referral(phone, rt)
    phone.text("STOP")
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert "Opted out of texts" in html and 'id="reply"' not in html
    staff.post(f"/inbox/referrals/{rid}/reply", body="Hello?")
    assert [m.status for m in rows(rt, Message, Message.kind == "caseworker")] == ["skipped_opted_out"]
    assert referral(rt, rid).status == "new"
    assert "not sent: opted out" in page(staff.get(f"/inbox/referrals/{rid}"))


def test_an_empty_or_too_long_reply_is_refused(staff, rt, phone):
    rid = open_referral(phone, rt)
    staff.post(f"/inbox/referrals/{rid}/reply", body="   ")
    assert "Write a message first" in page(staff.get(f"/inbox/referrals/{rid}"))
    staff.post(f"/inbox/referrals/{rid}/reply", body="x" * 1601)
    assert "too long for one text" in page(staff.get(f"/inbox/referrals/{rid}"))
    assert rows(rt, Message, Message.kind == "caseworker") == []


def test_a_reply_to_a_web_chat_visitor_reaches_their_page(staff, rt, app):
    chat = app.test_client()
    chat.post("/chat/messages", json={"text": "talk to a person"}, headers={"Origin": "http://localhost"})
    rid = rows(rt, Referral)[0].id
    assert "Web chat" in page(staff.get("/inbox/"))
    staff.post(f"/inbox/referrals/{rid}/reply", body="Hi, I'm Ana.")
    assert [m["body"] for m in chat.get("/chat/messages?after=0").get_json()["messages"]] == ["Hi, I'm Ana."]


def test_a_web_visitor_without_a_number_is_answered_in_the_chat_not_by_text(staff, rt, app, env):
    chat = app.test_client()
    chat.post("/chat/messages", json={"text": "talk to a person"}, headers={"Origin": "http://localhost"})
    rid = rows(rt, Referral)[0].id
    queue = page(staff.get("/inbox/"))
    assert "No verified number: answer in the chat" in queue
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert "Answer in their chat" in html and "Text them from the program" not in html
    assert "data-sms=" not in html, "no SMS counter for a chat answer"
    # A check-in planned for them has no number to go to: send-due says so, never "sent".
    staff.post(f"/inbox/referrals/{rid}/followups", template="checkin", day="2026-12-02", time="10:00")
    result = CliRunner().invoke(main, ["send-due", "--json", "--now", "2026-12-02T17:00:00Z"], env=env)
    assert result.exit_code == 0, result.output
    assert [(d["to"], d["status"]) for d in json.loads(result.output)] == [("-", "skipped_no_number")]
    assert [f.status for f in rows(rt, FollowUp)] == ["skipped_no_number"]
    assert rows(rt, Message, Message.kind == "followup") == []


def test_the_reply_box_carries_the_sms_alphabets_for_its_counter(staff, rt, phone):
    rid = open_referral(phone, rt)
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert 'id="reply-count"' in html and "data-sms='" in html and "\\u2019" in html


def test_close_needs_a_known_outcome_and_reopen_brings_it_back(staff, rt, phone):
    rid = open_referral(phone, rt)
    staff.post(f"/inbox/referrals/{rid}/close", outcome="went_fishing")
    assert referral(rt, rid).status == "new"
    staff.post(f"/inbox/referrals/{rid}/claim")
    staff.post(f"/inbox/referrals/{rid}/close", outcome="could_not_reach")
    staff.post(f"/inbox/referrals/{rid}/reopen")
    back = referral(rt, rid)
    assert (back.status, back.outcome, back.closed_at) == ("claimed", None, None)


def test_a_missing_referral_is_a_404_page(staff):
    resp = staff.get("/inbox/referrals/999")
    assert resp.status_code == 404 and "There is no such referral" in resp.get_data(as_text=True)
    staff.post("/inbox/referrals/999/claim")  # lands on the same page, with the reason
    assert "There is no such referral" in staff.get("/inbox/referrals/999").get_data(as_text=True)


def test_notes_are_saved_with_their_author(staff, rt, phone, ana):
    rid = open_referral(phone, rt)
    staff.post(f"/inbox/referrals/{rid}/notes", body="Called the landlord; waiting to hear back.")
    assert [(n.caseworker_id, n.body) for n in rows(rt, Note)] == [(ana, "Called the landlord; waiting to hear back.")]
    assert "Called the landlord" in page(staff.get(f"/inbox/referrals/{rid}"))


# -- check-ins ------------------------------------------------------------------------------------------------


def test_a_check_in_is_planned_in_program_time_and_can_be_cancelled(staff, rt, phone, ana):
    rid = open_referral(phone, rt)
    html = page(staff.get(f"/inbox/referrals/{rid}"))
    assert 'value="checkin"' in html and "checking in" in html  # the template's words, before choosing
    staff.post(f"/inbox/referrals/{rid}/followups", template="checkin", day="2026-12-04", time="10:30")
    planned = rows(rt, FollowUp, FollowUp.referral_id == rid)
    assert len(planned) == 1
    # 10:30 in Kansas City in December (CST, UTC-6) is 16:30 UTC
    assert planned[0].due_at == datetime(2026, 12, 4, 16, 30, tzinfo=UTC)
    assert (planned[0].template, planned[0].status, planned[0].created_by_id) == ("checkin", "pending", ana)
    staff.post(f"/inbox/followups/{planned[0].id}/cancel")
    assert rows(rt, FollowUp, FollowUp.referral_id == rid)[0].status == "cancelled"


@pytest.mark.parametrize(
    "form, message",
    [
        ({"template": "checkin", "day": "2026-11-30", "time": "10:00"}, "in the future"),
        ({"template": "eviction_notice", "day": "2026-12-04", "time": "10:00"}, "Pick a message"),
        ({"template": "checkin", "day": "someday", "time": "10:00"}, "Pick a date and a time"),
    ],
)
def test_a_bad_check_in_is_refused(staff, rt, phone, form, message):
    rid = open_referral(phone, rt)
    staff.post(f"/inbox/referrals/{rid}/followups", **form)
    assert message in page(staff.get(f"/inbox/referrals/{rid}"))
    assert rows(rt, FollowUp) == []


# -- admin ----------------------------------------------------------------------------------------------------


def test_an_admin_reassigns_a_referral(rt, phone, client):
    boss = add_caseworker(rt, email="boss@example.org", name="Boss", role="admin")
    ben = add_caseworker(rt, email="ben@example.org", name="Ben")
    admin = Staff(client)
    admin.login("boss@example.org")
    rid = open_referral(phone, rt)
    assert "Give to someone else" in page(admin.get(f"/inbox/referrals/{rid}"))
    admin.post(f"/inbox/admin/referrals/{rid}/assign", caseworker_id=str(ben))
    moved = referral(rt, rid)
    assert (moved.assigned_to_id, moved.status) == (ben, "claimed")
    event = rows(rt, AuditEvent, AuditEvent.action == "referral.assigned")[0]
    assert (event.actor_id, event.detail["to"]) == (boss, ben)


def test_staff_notices_never_show_in_the_residents_thread(staff, rt, phone):
    rid = open_referral(phone, rt)
    rt.outbound.send(
        referral(rt, rid).resident_id, "Peaceline: new referral", "notice", referral_id=rid, to="+18165550199"
    )
    assert "Peaceline: new referral" not in page(staff.get(f"/inbox/referrals/{rid}"))
