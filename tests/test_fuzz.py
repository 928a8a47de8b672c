"""Property tests: whatever a phone, Twilio or a browser sends, the answer is never a 5xx.

Through the real, signed webhook and the real chat API: any body (control characters, NUL,
huge), any extra or missing fields, junk in NumMedia and OptOutType, any From; any JSON to the
chat. Properties: no 5xx (400 only for a missing or unreadable From or MessageSid), every reply at
most 1,600 characters, the same request twice gets the same answer, and the saved conversation
state always loads again (it round-trips through JSON and the person's next text is answered).
"""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import quote

import pytest
from conftest import Phone, new_sid, sign, twiml_bodies
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.storage.models import ConversationSession, Message, Resident

ORIGIN = "http://localhost"
MAX_TEXT_REPLY = 1600
# A Twilio SID is two letters and 32 hex digits; the webhook refuses what cannot be one (400).
SID_LIKE = re.compile(r"[A-Za-z0-9]{1,64}")

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# -- what a form can carry: any character but a lone surrogate (UTF-8 cannot encode one) -------------------

FORM_CHARS = st.characters(exclude_categories=("Cs",))
CONTROL = st.sampled_from(
    [
        "\x00",
        "\x01",
        "\x07",
        "\x08",
        "\x0b",
        "\x0c",
        "\x1b",
        "\x7f",
        "\x85",
        "\u2028",
        "\u202e",
        "\ufeff",
        "\ufffd",
        "\r",
        "\n",
        "\t",
        "\u200b",
    ]
)
junk = st.text(FORM_CHARS, max_size=40)
numbery = st.one_of(
    junk,
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["²", "٣", "1e9", " 1", "0x1", "9" * 5000, "", "-1", "01", "1.5", "Infinity"]),
)
bodies = st.one_of(
    st.text(FORM_CHARS, max_size=200),
    st.text(st.one_of(CONTROL, FORM_CHARS), max_size=60),
    st.sampled_from(
        [
            "STOP",
            "stop texting me",
            "START",
            "HELP",
            "MENU",
            "1",
            "2",
            "64124",
            "yes",
            "no",
            "he is hitting me",
            "I need food",
            "talk to a person",
            "\x00",
            "enc1:gAAAA",
            "raw1:x",
        ]
    ),
    # huge: up to 10,000 characters (a form of 4-byte characters stays under the 256 KB request limit)
    st.builds(lambda unit, n: (unit * n)[:10_000], st.text(FORM_CHARS, min_size=1, max_size=8), st.integers(100, 5000)),
)
# Fields Twilio posts besides From, Body and the SIDs: each may be missing.
DROPPABLE = [
    "ToCountry",
    "ToState",
    "NumMedia",
    "ToCity",
    "FromZip",
    "SmsSid",
    "FromState",
    "SmsStatus",
    "FromCity",
    "FromCountry",
    "To",
    "ToZip",
    "NumSegments",
    "ReferralNumMedia",
    "AccountSid",
    "ApiVersion",
    "Body",
]
known_junk = st.fixed_dictionaries(
    {},
    optional={
        "NumMedia": numbery,
        "NumSegments": numbery,
        "ReferralNumMedia": numbery,
        "OptOutType": st.one_of(junk, st.sampled_from(["STOP", "START", "HELP", "stop", " ", "\x00", "UNKNOWN"])),
        "MediaUrl0": junk,
        "MediaContentType0": junk,
        "ProfileName": junk,
        "WaId": junk,
        "SmsStatus": junk,
        "AccountSid": junk,
        "To": junk,
        "Latitude": junk,
        "ButtonText": junk,
        "MessagingServiceSid": junk,
    },
)
random_fields = st.dictionaries(st.text(FORM_CHARS, min_size=1, max_size=20), junk, max_size=4)

_numbers = itertools.count(1)


def fresh_number() -> str:
    """A new resident for every example (so the loop guard and old state never get in the way)."""
    n = next(_numbers)
    return f"+1913{n // 10_000 % 1000:03d}{n % 10_000:04d}"


FROM_VARIANTS = {  # ways Twilio or a test might write the same US number
    "e164": lambda n: n,
    "whatsapp": lambda n: f"whatsapp:{n}",
    "national": lambda n: f"({n[2:5]}) {n[5:8]}-{n[8:]}",
    "ten digits": lambda n: n[2:],
    "spaced": lambda n: f"  {n}  ",
}
froms = st.one_of(
    st.sampled_from(sorted(FROM_VARIANTS)).map(lambda k: ("good", k)),
    st.sampled_from([None, "", "   "]).map(lambda v: ("missing", v)),
    junk.map(lambda v: ("junk", v)),
    st.sampled_from(
        [
            "+1",
            "tel:",
            "client:anna",
            "+999999999999999999",
            "whatsapp:",
            "+1816555\x00123",
            "1" * 40,
            "+44 20 7946 0958",
            "messenger:123",
        ]
    ).map(lambda v: ("junk", v)),
)
sids = st.one_of(
    st.just(("keep", None)),
    st.just(("only SmsMessageSid", None)),
    st.just(("missing", None)),
    st.sampled_from(["", "S" * 65, "SM\x00abc", "SM abc", "é" * 10, "SM" + "a" * 62]).map(lambda v: ("given", v)),
    junk.map(lambda v: ("given", v)),
)


def loads_again(rt, resident_id: int) -> dict:
    """The saved state is plain JSON: it comes back equal after a round trip."""
    with rt.db.sessions() as s:
        conv = s.scalar(select(ConversationSession).where(ConversationSession.resident_id == resident_id))
    state = conv.state if conv is not None else {}
    assert isinstance(state, dict)
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    return state


@FUZZ
@given(
    body=bodies,
    known=known_junk,
    extra=random_fields,
    dropped=st.sets(st.sampled_from(DROPPABLE)),
    sender=froms,
    sid=sids,
)
@example(body="hi", known={"NumMedia": "²"}, extra={}, dropped=set(), sender=("good", "e164"), sid=("keep", None))
@example(
    body="hi", known={"NumMedia": "9" * 5000}, extra={}, dropped=set(), sender=("good", "e164"), sid=("keep", None)
)
@example(
    body="hi",
    known={"NumMedia": "99999999999999999999"},
    extra={},
    dropped=set(),
    sender=("good", "e164"),
    sid=("keep", None),
)
@example(body="hi", known={}, extra={}, dropped=set(), sender=("good", "e164"), sid=("given", "S" * 65))
@example(body="hi", known={}, extra={}, dropped=set(), sender=("good", "e164"), sid=("given", "SM\x00abc"))
def test_any_signed_text_gets_a_clean_answer_and_leaves_a_state_that_loads(
    client, rt, body, known, extra, dropped, sender, sid
):
    number = fresh_number()
    phone = Phone(client, number)
    params = phone.payload(body)
    params.update(extra)
    params.update(known)
    for name in dropped:
        params.pop(name, None)
    kind, value = sender
    if kind == "good":
        params["From"] = FROM_VARIANTS[value](number)
    elif value is None:
        params.pop("From", None)
    else:
        params["From"] = value
    how, given_sid = sid
    if how == "only SmsMessageSid":
        params.pop("MessageSid")
    elif how == "missing":
        params.pop("MessageSid"), params.pop("SmsMessageSid")
    elif how == "given":
        params["MessageSid"] = given_sid
    used_sid = params.get("MessageSid") or params.get("SmsMessageSid")

    stored_before = _inbound_count(rt)
    resp = phone.post(params)
    event(f"{resp.status_code} (From {kind}, sid {how})")
    assert resp.status_code in (200, 400), (resp.status_code, resp.get_data(as_text=True)[:500])
    sid_ok = bool(used_sid) and SID_LIKE.fullmatch(used_sid) is not None
    if resp.status_code == 400:
        assert kind != "good" or not sid_ok, resp.get_data(as_text=True)
        assert _inbound_count(rt) == stored_before, "a refused text was stored"
        return
    assert sid_ok, "a MessageSid that cannot be Twilio's was accepted"
    assert resp.mimetype == "text/xml"
    replies = twiml_bodies(resp.get_data(as_text=True))
    assert all(len(r) <= MAX_TEXT_REPLY for r in replies), [len(r) for r in replies]

    again = phone.post(params)  # Twilio retries: the same answer, nothing handled twice
    assert again.status_code == 200 and twiml_bodies(again.get_data(as_text=True)) == replies

    with rt.db.sessions() as s:
        inbound = s.scalars(select(Message).where(Message.provider_sid == used_sid)).one()
        assert inbound.body == params.get("Body", "").replace("\x00", "")
        resident = s.get(Resident, inbound.resident_id)
    loads_again(rt, resident.id)
    if kind == "good":
        # the person's next text is answered from the saved state
        following = Phone(client, resident.phone).text("MENU")
        with rt.db.sessions() as s:
            opted_out = s.get(Resident, resident.id).opted_out
        assert following or opted_out, "the next text after this one got no answer"
        loads_again(rt, resident.id)


def _inbound_count(rt) -> int:
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))


@FUZZ
@given(
    status=st.one_of(st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed", "read"]), junk),
    error_code=st.one_of(st.none(), numbery),
    sid=st.one_of(st.just("real"), junk),
    reply=st.one_of(st.just("real"), junk),
    extra=random_fields,
)
@example(status="undelivered", error_code="²", sid="real", reply="real", extra={})
@example(status="failed", error_code="9" * 30, sid="real", reply="real", extra={})
@example(status="sent", error_code=None, sid="S" * 65, reply="real", extra={})
@example(status="sent", error_code=None, sid="SM\x00x", reply="real", extra={})
def test_any_signed_status_callback_gets_204(client, rt, status, error_code, sid, reply, extra):
    phone = Phone(client, fresh_number())
    reply_ids = [m.id for m in _replies_of(rt, phone, "hi")]
    params = {**extra, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    params["MessageSid"] = new_sid() if sid == "real" else sid
    if error_code is not None:
        params["ErrorCode"] = error_code
    path = "/sms/status?reply=" + (str(reply_ids[0]) if reply == "real" else quote(reply, safe=""))
    resp = client.post(path, data=params, headers={"X-Twilio-Signature": sign(path, params)})
    assert resp.status_code == 204, resp.get_data(as_text=True)[:300]


def _replies_of(rt, phone: Phone, text: str) -> list[Message]:
    params = phone.payload(text)
    assert phone.post(params).status_code == 200
    with rt.db.sessions() as s:
        inbound = s.scalars(select(Message).where(Message.provider_sid == params["MessageSid"])).one()
        return list(s.scalars(select(Message).where(Message.in_reply_to_id == inbound.id)))


# -- the web chat: any JSON at all ----------------------------------------------------------------------------

ANY_CHARS = st.characters()  # JSON can carry lone surrogates ("\ud800"); the API must refuse them, not crash
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(ANY_CHARS, max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
chat_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "text": st.one_of(
                st.text(ANY_CHARS, max_size=300), json_values, st.text(FORM_CHARS, min_size=1990, max_size=2010)
            )
        },
        optional={"chat_key": junk, "lang": junk, "phone": junk, "consent": json_values},
    ),
    st.sampled_from(
        [
            {"text": t}
            for t in (
                "hi",
                "STOP",
                "menu",
                "2",
                "64124",
                "he is hitting me",
                "\x00",
                "\ud800",
                "x" * 2000,
                "x" * 2001,
                " ",
                "español",
            )
        ]
    ),
)
_addresses = itertools.count(1)


def chat_client(app):
    """A new browser from a new address each time, so the per-address limit never answers for the code."""
    client = app.test_client()
    n = next(_addresses)
    client.environ_base["REMOTE_ADDR"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
    return client


def chat_post(client, raw: bytes | str):
    return client.post("/chat/messages", data=raw, content_type="application/json", headers={"Origin": ORIGIN})


def chat_resident(app, rt, client) -> int | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        return None
    key = app.session_interface.get_signing_serializer(app).loads(cookie.value).get("chat_key")
    with rt.db.sessions() as s:
        return s.scalar(select(Resident.id).where(Resident.chat_key == key))


@FUZZ
@given(payload=chat_payloads)
def test_any_json_to_the_chat_gets_200_or_400_and_the_conversation_goes_on(app, rt, payload):
    client = chat_client(app)
    resp = chat_post(client, json.dumps(payload))
    event(str(resp.status_code))
    assert resp.status_code in (200, 400), (resp.status_code, resp.get_data(as_text=True)[:300])
    data = resp.get_json()
    if resp.status_code == 400:
        assert isinstance(data["error"], str) and data["error"]
        return
    assert set(data) == {"replies", "options"}
    assert all(isinstance(r, str) and len(r) <= MAX_TEXT_REPLY for r in data["replies"])
    assert all(isinstance(o, str) for o in data["options"])
    resident_id = chat_resident(app, rt, client)
    assert resident_id is not None
    loads_again(rt, resident_id)
    following = chat_post(client, json.dumps({"text": "menu"}))
    assert following.status_code == 200
    with rt.db.sessions() as s:
        opted_out = s.get(Resident, resident_id).opted_out
    assert following.get_json()["replies"] or opted_out
    loads_again(rt, resident_id)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(FORM_CHARS, max_size=300).map(str.encode)))
def test_any_bytes_posted_as_json_get_400_never_5xx(app, raw):
    resp = chat_post(chat_client(app), raw)
    assert resp.status_code in (200, 400), resp.status_code


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000, '{"a":' * 50_000, '{"text": ' + "[" * 100_000, '{"text": "hi"' + "}" * 10, '\ufeff{"text": "hi"}'],
    ids=["deep list", "deep object", "deep text", "trailing junk", "bom"],
)
def test_pathological_json_gets_an_answer_not_a_crash(app, raw):
    resp = chat_post(chat_client(app), raw.encode())
    assert resp.status_code in (200, 400), resp.status_code


def test_a_request_over_the_size_limit_is_413_not_5xx(client):
    phone = Phone(client, fresh_number())
    resp = phone.send("x" * 300_000)
    assert resp.status_code in (403, 413)
    resp = chat_post(chat_client(client.application), json.dumps({"text": "x" * 300_000}))
    assert resp.status_code == 413


# -- any query string on any GET route: 400 for what cannot be read, never a 5xx ------------------------------

QUERY_NAMES = [
    "after",
    "next",
    "show",
    "since",
    "until",
    "format",
    "reply",
    "page",
    "lang",
    "q",
    "id",
    "urgent",
    "need",
    "month",
]
query_values = st.one_of(
    junk,
    numbery,
    st.sampled_from(
        [
            "²",
            "9" * 39,
            "-0",
            "1e400",
            "\n",
            "/\n",
            "/inbox\r\nX-Injected: 1",
            "/%0A",
            "\x00",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/inbox/\u2028",
            "2026-02-30",
            "9999-12-31",
            "0001-01-01",
            "2026-11-10T00:00",
            "open",
            "closed",
            "mine",
            "csv",
        ]
    ),
)
queries = st.dictionaries(
    st.one_of(st.sampled_from(QUERY_NAMES), st.text(FORM_CHARS, min_size=1, max_size=10)), query_values, max_size=4
)


# Every GET route of the app (placeholders: referral 1), asked by an anonymous visitor or by a logged-in admin.
PUBLIC_GETS = ["/", "/chat", "/chat/messages", "/healthz", "/login"]
STAFF_GETS = [
    "/inbox/",
    "/inbox/queue.json",
    "/inbox/referrals/1",
    "/inbox/admin/",
    "/reports",
    "/reports.csv",
    "/reports/map",
]


def test_the_fuzzed_routes_are_every_get_route(app):
    """A GET route added to the app must be added above, so the property below covers it."""
    from test_security import routes

    assert sorted(url for _, _, url in routes(app, methods={"GET"})) == sorted(PUBLIC_GETS + STAFF_GETS)


@pytest.fixture
def visitors(app, rt, client):
    """A chat visitor with a conversation (so `after` reaches the database) and a logged-in admin,
    with a referral #1 to look at."""
    from staff_helpers import Staff, add_caseworker, open_referral

    open_referral(Phone(client, fresh_number()), rt)
    chat = chat_client(app)
    assert chat_post(chat, json.dumps({"text": "hi"})).status_code == 200
    add_caseworker(rt, role="admin")
    admin = Staff(app.test_client())
    assert admin.login().status_code == 302
    return chat, admin.client


@pytest.mark.parametrize(
    "url", ["/chat/messages?after=%C2%B2", "/chat/messages?after=" + "9" * 39, "/chat/messages?after=" + "9" * 19]
)
def test_the_known_bad_after_values_get_400(visitors, url):
    chat, _ = visitors
    resp = chat.get(url)
    assert resp.status_code == 400 and "after" in resp.get_json()["error"]


@pytest.mark.parametrize("next_", ["/%0A", "/inbox%0Ax", "/inbox%0D%0AX-Injected:%201", "/inbox/%E2%80%A8"])
def test_a_next_with_a_newline_or_control_character_is_ignored_not_a_500(visitors, next_):
    _, staff = visitors
    resp = staff.get(f"/login?next={next_}")
    assert resp.status_code == 302 and resp.headers["Location"] == "/inbox/"
    assert "X-Injected" not in resp.headers


@FUZZ
@given(route=st.sampled_from(PUBLIC_GETS + STAFF_GETS), query=queries, staff=st.booleans())
@example(route="/chat/messages", query={"after": "²"}, staff=False)
@example(route="/chat/messages", query={"after": "9" * 39}, staff=False)
@example(route="/login", query={"next": "/\n"}, staff=True)
def test_any_query_on_any_get_route_never_gets_a_5xx(visitors, route, query, staff):
    chat, admin = visitors
    client = admin if staff or route in STAFF_GETS else chat
    resp = client.get(route, query_string=query)
    event(f"{route} {resp.status_code}")
    assert resp.status_code < 500, (route, query, resp.status_code, resp.get_data(as_text=True)[:300])


phone_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "phone": st.one_of(
                junk,
                json_values,
                st.sampled_from(
                    ["+18165550177", "816 555 0177", "+1 900 555 0123", "+44 20 7946 0958", "+882 1360 0001", "\ud800"]
                ),
            )
        },
        optional={
            "code": st.one_of(junk, json_values, st.sampled_from(["123456", "１２３４５６", " 1 2 3 4 5 6 "])),
            "consent": json_values,
        },
    ),
)


@FUZZ
@given(payload=phone_payloads)
def test_any_json_to_the_phone_step_gets_a_reason_never_a_5xx(app, payload):
    resp = chat_client(app).post(
        "/chat/phone", data=json.dumps(payload), content_type="application/json", headers={"Origin": ORIGIN}
    )
    event(str(resp.status_code))
    assert resp.status_code in (200, 400, 429), (resp.status_code, resp.get_data(as_text=True)[:300])
    data = resp.get_json()
    assert data in ({"sent": True}, {"saved": True}) or (isinstance(data["error"], str) and data["error"])
