"""Security, beyond what test_auth, test_inbox, test_sms_webhook and test_web_chat already prove.

Forged forwarding headers against the webhook signature; CSRF and login on every route of the
URL map (so a new one cannot be forgotten); an attacker's pre-login cookie; the login limit
against a forged X-Forwarded-For; markup and SQL from residents and staff; and no secret, full
phone number or message body in any log line of a run through every channel.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys

import pytest
import requests
from conftest import AUTH_TOKEN, BASE_URL, PROGRAM_NUMBER, RESIDENT, T0, Phone, sign
from cryptography.fernet import Fernet
from fault_twilio import ACCOUNT_SID
from requests.adapters import BaseAdapter
from sqlalchemy import func, inspect, select
from staff_helpers import PASSWORD, Staff, add_caseworker, fast_argon2, open_referral, token_in  # noqa: F401
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.config import load_settings
from bot.logs import MaskingFilter
from bot.messaging.dispatch import dispatch_due
from bot.messaging.outbound import TwilioSender
from bot.storage.models import AuditEvent, Caseworker, FollowUp, Message, Note, Referral, Resident
from bot.web import sms

ORIGIN = "http://localhost"


@pytest.fixture
def make_app(env, clock):
    """Apps built from the test env with some settings changed; disposed afterwards."""
    apps = []

    def make(**overrides: str):
        app = create_app(load_settings({**env, **overrides}), clock=clock)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["peaceline"].db.dispose()


# -- the webhook signature and forwarded headers -------------------------------------------------------


def signed_post(client, url: str, params: dict[str, str], headers: dict[str, str] | None = None):
    """POST /sms with a valid signature *for `url`*: whether it counts depends on the URL the app believes."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return client.post("/sms", data=params, headers={"X-Twilio-Signature": signature, **(headers or {})})


FORGED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "peaceline.example.org"}


def test_forwarded_headers_from_an_untrusted_hop_are_ignored(make_app):
    """TRUSTED_PROXIES=0, no PUBLIC_BASE_URL: the signature must be for the URL the app really served."""
    client = make_app(PUBLIC_BASE_URL="", TRUSTED_PROXIES="0").test_client()
    phone = Phone(client)
    forged = signed_post(client, "https://peaceline.example.org/sms", phone.payload("hi"), FORGED)
    assert forged.status_code == 403
    honest = signed_post(client, "http://localhost/sms", phone.payload("hi"), FORGED)
    assert honest.status_code == 200  # the same request, signed for the URL actually seen, is fine


def test_forwarded_headers_from_one_trusted_hop_are_believed_and_only_the_last_value(make_app, rt):
    client = make_app(PUBLIC_BASE_URL="", TRUSTED_PROXIES="1").test_client()
    phone = Phone(client)
    resp = signed_post(client, "https://peaceline.example.org/sms", phone.payload("hi"), FORGED)
    assert resp.status_code == 200
    assert 'action="https://peaceline.example.org/sms/status?reply=' in resp.get_data(as_text=True)
    # A client that adds its own value in front of the proxy's does not choose the host.
    chained = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example, peaceline.example.org"}
    assert signed_post(client, "https://evil.example/sms", phone.payload("hi"), chained).status_code == 403
    assert signed_post(client, "https://peaceline.example.org/sms", phone.payload("hi"), chained).status_code == 200


def test_public_base_url_wins_over_any_forwarded_host(make_app):
    client = make_app(PUBLIC_BASE_URL=BASE_URL, TRUSTED_PROXIES="1").test_client()
    phone = Phone(client)
    evil = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    assert signed_post(client, "https://evil.example/sms", phone.payload("hi"), evil).status_code == 403
    assert signed_post(client, f"{BASE_URL}/sms", phone.payload("hi"), evil).status_code == 200


def test_the_status_callback_checks_the_signature_too(client, rt, phone):
    phone.text("hi")
    params = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "failed", "ErrorCode": "21610"}
    assert client.post("/sms/status?reply=1", data=params).status_code == 403
    forged = RequestValidator(AUTH_TOKEN).compute_signature(f"{BASE_URL}/sms/status?reply=2", params)
    resp = client.post("/sms/status?reply=1", data=params, headers={"X-Twilio-Signature": forged})
    assert resp.status_code == 403, "the query string is covered by the signature"
    with rt.db.sessions() as s:
        assert not s.scalars(select(Resident)).one().opted_out


# -- every route: CSRF on every form, a login on everything private ---------------------------------------

STAFF_POST_PREFIXES = ("/inbox", "/login", "/logout", "/reports")
# The only endpoints anyone may reach without logging in. A new public route must be added here on purpose.
PUBLIC = {
    "health.healthz",
    "web.home",
    "web.page",
    "web.post_message",
    "web.new_messages",
    "web.save_phone",
    "web.leave",
    "auth.login",
    "auth.logout",
}


def routes(app, prefixes: tuple[str, ...] = ("/",), methods: set[str] | None = None) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule under `prefixes`, placeholders filled with 1; static files left out."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefixes) or rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **{name: 1 for name in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if methods is None or method in methods:
                out.append((rule.endpoint, method, url))
    return out


def audit_count(rt) -> int:
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent))


def test_every_staff_form_refuses_a_post_without_its_csrf_token(app, client, rt, phone):
    assert app.config.get("WTF_CSRF_ENABLED", True)
    posts = routes(app, STAFF_POST_PREFIXES, {"POST"})
    assert {
        "auth.login",
        "auth.logout",
        "inbox.claim",
        "inbox.reply",
        "inbox.add_note",
        "inbox.close",
        "inbox.schedule_followup",
        "inbox.cancel_followup",
        "inbox.admin.create",
        "inbox.admin.set_active",
        "inbox.admin.reset_password",
        "inbox.admin.assign",
    } <= {e for e, _, _ in posts}
    open_referral(phone, rt)
    add_caseworker(rt, role="admin")
    anonymous = app.test_client()
    other = Staff(app.test_client())  # someone else's session and token
    other.login()
    foreign_token = token_in(other.get("/inbox/").get_data(as_text=True))
    admin = Staff(client)
    assert admin.login().status_code == 302
    before = audit_count(rt)
    for endpoint, _, url in posts:
        for who, data in (
            (client, {}),
            (client, {"csrf_token": "forged"}),
            (client, {"csrf_token": foreign_token}),
            (anonymous, {}),
        ):
            resp = who.post(
                url,
                data={
                    "body": "x",
                    "outcome": "got_help",
                    "password": PASSWORD * 2,
                    "email": "x@example.org",
                    "name": "X",
                    **data,
                },
            )
            assert resp.status_code == 400, (endpoint, data, resp.status_code)
    assert audit_count(rt) == before, "a refused form changed something"
    with rt.db.sessions() as s:
        assert s.get(Referral, 1).status == "new" and s.scalar(select(func.count()).select_from(Note)) == 0


def test_twilios_own_app_serves_only_the_two_signed_routes(app, client):
    """Twilio's endpoints run in an app of their own, without the pages' login, CSRF and limits: it must
    hold nothing else, and both of its routes refuse an unsigned request."""
    twilio = app.extensions["peaceline.twilio"]
    rules = {rule.rule for rule in twilio.url_map.iter_rules() if rule.endpoint != "static"}
    assert rules == set(sms.PATHS) == {"/sms", "/sms/status"}
    for path in sms.PATHS:
        assert client.post(path, data={"MessageSid": "SM" + "a" * 32}).status_code == 403
    assert client.post("/sms/other", data={}).status_code == 404


def test_every_route_but_the_public_ones_needs_a_login(app):
    """The whole URL map, not just /inbox and /reports: a private route added anywhere is caught."""
    app.config["WTF_CSRF_ENABLED"] = False  # so it is the login check, not CSRF, that refuses the POSTs
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= PUBLIC, f"stale entries in PUBLIC: {PUBLIC - endpoints}"
    private = [r for r in routes(app) if r[0] not in PUBLIC]
    assert len(private) >= 15
    client = app.test_client()
    for endpoint, method, url in private:
        resp = client.open(url, method=method)
        assert resp.status_code in (302, 401), (endpoint, method, resp.status_code)
        if resp.status_code == 302:
            assert resp.headers["Location"].startswith("/login?next="), (endpoint, resp.headers["Location"])


def test_every_admin_route_refuses_a_caseworker(app, client, rt, phone):
    open_referral(phone, rt)
    ana = add_caseworker(rt)
    staff = Staff(client)
    staff.login()
    admin_routes = routes(app, ("/inbox/admin",))
    assert len(admin_routes) >= 5
    for endpoint, method, url in admin_routes:
        resp = (
            staff.get(url)
            if method == "GET"
            else staff.post(
                url,
                caseworker_id=str(ana),
                active="0",
                password="a brand new password",
                role="admin",
                email="mallory@example.org",
                name="Mallory",
            )
        )
        assert resp.status_code == 403, (endpoint, method, resp.status_code)
    with rt.db.sessions() as s:
        me = s.get(Caseworker, ana)
        assert me.active and me.role == "caseworker"
        assert s.scalar(select(Caseworker).where(Caseworker.email == "mallory@example.org")) is None
        assert s.get(Referral, 1).assigned_to_id is None


@pytest.mark.parametrize(
    "path",
    [
        "/static/../config.py",
        "/static/..%2fconfig.py",
        "/chat/static/../web.py",
        "/inbox/static/..%2f__init__.py",
        "/reports/static/..%2f..%2fconfig.py",
        "/static/%2e%2e/%2e%2e/instance/secret_key",
    ],
)
def test_static_files_never_reach_outside_their_folder(client, path):
    resp = client.get(path)
    assert resp.status_code == 404 and b"import" not in resp.data


# -- sessions -----------------------------------------------------------------------------------------------


def test_a_cookie_planted_before_login_is_replaced_and_stays_anonymous(app, rt):
    """Session fixation: the attacker hands the victim their own pre-login cookie, then waits."""
    add_caseworker(rt)
    name = app.config["SESSION_COOKIE_NAME"]
    attacker = app.test_client()
    attacker.get("/login")
    attacker.post("/chat/messages", json={"text": "hi"}, headers={"Origin": ORIGIN})  # a chat key, too
    planted = attacker.get_cookie(name).value
    victim = Staff(app.test_client())
    victim.client.set_cookie(name, planted)
    assert victim.login().status_code == 302
    after = victim.client.get_cookie(name).value
    assert after != planted
    serializer = app.session_interface.get_signing_serializer(app)
    assert "chat_key" not in serializer.loads(after), "the attacker's chat conversation rode along into staff's"
    assert attacker.get("/inbox/").status_code == 302, "the attacker's copy of the cookie is still anonymous"
    assert victim.get("/inbox/").status_code == 200


def test_a_copy_of_the_cookie_taken_before_logout_stops_working(app, rt):
    add_caseworker(rt)
    staff = Staff(app.test_client())
    staff.login()
    name = app.config["SESSION_COOKIE_NAME"]
    copied = staff.client.get_cookie(name).value
    staff.post("/logout")
    thief = app.test_client()
    thief.set_cookie(name, copied)
    assert thief.get("/inbox/").status_code == 302


def test_a_forged_x_forwarded_for_does_not_escape_the_login_limit(rt, client):
    """TRUSTED_PROXIES=0: the limit counts the real peer, not an address the client makes up."""
    add_caseworker(rt)
    codes = []
    for i in range(12):
        token = token_in(client.get("/login").get_data(as_text=True))
        # A new email each time: the per-account lockout is not what this test is about.
        codes.append(
            client.post(
                "/login",
                data={"email": f"nobody{i}@example.org", "password": "wrong password", "csrf_token": token},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
        )
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


# -- markup and SQL from anyone ------------------------------------------------------------------------------

SCRIPT = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE residents; -- \" OR 1=1; SELECT * FROM caseworkers WHERE ''='"


def test_markup_from_a_chat_visitor_and_from_staff_is_shown_as_text(app, client, rt):
    chat = app.test_client()
    chat.post("/chat/messages", json={"text": "talk to a person"}, headers={"Origin": ORIGIN})
    chat.post("/chat/messages", json={"text": SCRIPT}, headers={"Origin": ORIGIN})
    add_caseworker(rt, role="admin")
    admin = Staff(client)
    admin.login()
    admin.post("/inbox/admin/caseworkers", name=SCRIPT, email="ben@example.org", password=PASSWORD, role="caseworker")
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
        ben = s.scalar(select(Caseworker.id).where(Caseworker.email == "ben@example.org"))
    admin.post(f"/inbox/admin/referrals/{rid}/assign", caseworker_id=str(ben))
    admin.post(f"/inbox/referrals/{rid}/reply", body=SCRIPT)
    for path in ("/inbox/", f"/inbox/referrals/{rid}", "/inbox/admin/", "/reports"):
        html = admin.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;" in admin.get(f"/inbox/referrals/{rid}").get_data(as_text=True)
    assert "&lt;script&gt;" in admin.get("/inbox/admin/").get_data(as_text=True)
    queue_json = admin.get("/inbox/queue.json").get_json()["html"]
    assert "<script>alert" not in queue_json


def test_the_login_page_reflects_nothing_as_markup(app, rt):
    client = app.test_client()
    nasty_next = '/inbox/"><script>alert(1)</script>'
    page = client.get("/login?next=" + requests.utils.quote(nasty_next)).get_data(as_text=True)
    assert "<script>alert" not in page
    token = token_in(page)
    resp = client.post(
        "/login",
        data={
            "email": '"><script>alert(2)</script>@x.org',
            "password": "wrong password",
            "csrf_token": token,
            "next": nasty_next,
        },
    )
    assert resp.status_code == 401
    assert "<script>alert" not in resp.get_data(as_text=True)


def test_sql_looking_input_is_stored_verbatim_and_harmless(app, client, rt, phone):
    tables = set(inspect(rt.db.engine).get_table_names())
    assert phone.text(SQL) is not None
    chat = app.test_client()
    assert chat.post("/chat/messages", json={"text": SQL}, headers={"Origin": ORIGIN}).status_code == 200
    rid = open_referral(phone, rt)
    add_caseworker(rt)
    staff = Staff(client)
    staff.login(email=SQL)  # a wrong login with it, too
    staff.login()
    staff.post(f"/inbox/referrals/{rid}/notes", body=SQL)
    staff.post(f"/inbox/referrals/{rid}/reply", body=SQL)
    for path in (
        f"/inbox/?show={SQL}",
        f"/reports?since={SQL}",
        f"/reports.csv?until={SQL}",
        f"/chat/messages?after={SQL}",
    ):
        assert staff.get(requests.utils.quote(path, safe="/?=")).status_code in (200, 400), path
    assert set(inspect(rt.db.engine).get_table_names()) == tables
    with rt.db.sessions() as s:
        inbound = [m.body for m in s.scalars(select(Message).where(Message.direction == "in"))]
        assert inbound.count(SQL) == 2  # the text and the chat message, character for character
        assert s.scalars(select(Note.body)).one() == SQL
        assert s.scalars(select(Message.body).where(Message.kind == "caseworker")).one() == SQL
        assert s.scalar(select(func.count()).select_from(Resident)) == 2
        assert s.scalar(select(func.count()).select_from(Caseworker)) == 1


# -- no secret, full number or body in any log line ---------------------------------------------------------


class FakeTwilioApi(BaseAdapter):
    """The network under the real TwilioHttpClient (its own request logging included): every send succeeds."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        resp = requests.Response()
        resp.status_code, resp.request, resp.url = 201, request, request.url
        resp.headers["Content-Type"] = "application/json"
        resp._content = json.dumps(
            {"sid": f"SM{len(self.requests):032x}", "status": "queued", "account_sid": ACCOUNT_SID, "num_segments": "1"}
        ).encode()
        return resp

    def close(self) -> None:
        pass


SECRET_KEY = "s3cret-key-that-must-never-be-logged-0123456789"
CASEWORKER_PHONE = "+18165550177"
VISITOR_PHONE = "+18165550166"
BODIES = [
    "my landlord changed the locks",
    "Maria will call you at 4 about the locks",
    "our kids have not eaten since friday",
    "talk to a person",
    "64124",
]


def test_no_secret_full_number_or_body_in_any_log_line(env, clock, caplog, capfd):
    data_key = Fernet.generate_key().decode()
    settings = load_settings(
        {
            **env,
            "SECRET_KEY": SECRET_KEY,
            "DATA_KEY": data_key,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_FROM_NUMBER": PROGRAM_NUMBER,
        }
    )
    http = TwilioHttpClient(timeout=10)
    api = FakeTwilioApi()
    http.session.mount("https://", api)  # nothing leaves the machine
    app = create_app(settings, clock=clock, sender=TwilioSender(settings, http_client=http, sleep=lambda _s: None))
    rt = app.extensions["peaceline"]
    # The production handler (JSON lines, masking filter) writes to stderr: point it at the captured one.
    production = [h for h in logging.getLogger().handlers if any(isinstance(f, MaskingFilter) for f in h.filters)]
    assert production, "logs.configure() installs the production handler"
    streams = [h.setStream(sys.stderr) for h in production]
    try:
        with caplog.at_level(logging.DEBUG):
            add_caseworker(rt, phone=CASEWORKER_PHONE)  # on duty: gets a notice for each new referral
            client = app.test_client()
            phone = Phone(client)
            for text in ("hi", BODIES[0], "1", BODIES[4], "yes"):
                phone.text(text)
            phone.text(BODIES[3])
            bad = phone.payload("a forged text")
            phone.post(bad, signature="forged")
            chat = app.test_client()
            for text in (BODIES[2], BODIES[3]):
                chat.post("/chat/messages", json={"text": text}, headers={"Origin": ORIGIN})
            chat.post("/chat/phone", json={"phone": VISITOR_PHONE, "consent": True}, headers={"Origin": ORIGIN})
            staff = Staff(client)
            staff.login(password="not the password at all")
            staff.login()
            with rt.db.sessions() as s:
                referrals = list(s.scalars(select(Referral.id)))
                resident_id = s.scalars(select(Message.resident_id).where(Message.direction == "in")).first()
            for rid in referrals:
                staff.post(f"/inbox/referrals/{rid}/claim")
                staff.post(f"/inbox/referrals/{rid}/reply", body=BODIES[1])
                staff.post(f"/inbox/referrals/{rid}/notes", body=BODIES[0])
            with rt.db.transaction() as s:
                s.add(FollowUp(resident_id=resident_id, template="checkin", due_at=T0, created_at=T0))
            assert [d.status for d in dispatch_due(rt, T0)] == ["sent"]
            status = {"MessageSid": f"SM{1:032x}", "MessageStatus": "undelivered", "ErrorCode": "30003", "To": RESIDENT}
            client.post("/sms/status", data=status, headers={"X-Twilio-Signature": sign("/sms/status", status)})
            client.get("/healthz")
    finally:
        for handler, stream in zip(production, streams, strict=False):
            handler.setStream(stream)
        rt.db.dispose()

    assert len(api.requests) >= 3, "the caseworker reply, the follow-up and a notice went through Twilio"
    stderr = capfd.readouterr().err
    raw = [
        r.getMessage() + (("\n" + logging.Formatter().formatException(r.exc_info)) if r.exc_info else "")
        for r in caplog.records
    ]
    assert raw and stderr.strip(), "the run must be logged"
    lines = raw + stderr.splitlines()
    auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    secrets_ = {"SECRET_KEY": SECRET_KEY, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DATA_KEY": data_key, "Authorization": auth}
    numbers = [RESIDENT, CASEWORKER_PHONE, VISITOR_PHONE]
    reply_words = ["Places with", "checking in", "A person from our team will text you"]
    leaks = []
    for line in lines:
        for name, value in secrets_.items():
            if value in line:
                leaks.append(f"{name}: {line}")
        digits = re.sub(r"[\s().\-]", "", line)
        leaks += [f"number: {line}" for n in numbers if n[2:] in digits or n[5:] in digits]
        leaks += [f"body: {line}" for b in BODIES + reply_words if len(b) > 8 and b in line]
    assert not leaks, "\n".join(leaks[:20])
