"""Web chat through the Flask test client: the cookie, the JSON API, consent, leave, the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import T0
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from bot.storage.models import AuditEvent, Message, Resident

ORIGIN = "http://localhost"  # the test client's own origin
STATIC = Path(__file__).resolve().parent.parent / "bot" / "web" / "static"


def post(client, path: str, payload, **headers):
    return client.post(path, json=payload, headers={"Origin": ORIGIN, **headers})


def say(client, text: str) -> dict:
    resp = post(client, "/chat/messages", {"text": text})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data = resp.get_json()
    assert set(data) == {"replies", "options"}
    assert all(isinstance(r, str) for r in data["replies"] + data["options"])
    return data


def session_of(app, client) -> dict:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def resident_of(rt, app, client) -> Resident:
    with rt.db.sessions() as s:
        return s.scalars(select(Resident).where(Resident.chat_key == session_of(app, client)["chat_key"])).one()


def food_places(rt) -> list[str]:
    matches = rt.directory.rank("food", zip_code="64124", now=T0, tz=rt.settings.program_timezone, limit=3)
    assert matches, "the test directory has food places near 64124"
    return [m.name for m in matches]


# -- the conversation ---------------------------------------------------------------------------


def test_food_then_zip_gives_places(client, rt):
    first = say(client, "I need food")
    assert any("ZIP" in r for r in first["replies"])
    second = say(client, "64124")
    text = "\n".join(second["replies"])
    assert food_places(rt)[0] in text
    assert second["options"], "the last question (want a person?) offers buttons"


def test_menu_gives_options_and_a_tapped_option_works(client):
    menu = say(client, "menu")
    assert len(menu["options"]) >= 7
    food = next(o for o in menu["options"] if o.lower() == "food")
    assert any("ZIP" in r for r in say(client, food)["replies"])


def test_spanish_switch_answers_in_spanish_and_the_page_follows(client):
    say(client, "español")
    assert any("código postal" in r for r in say(client, "comida")["replies"])
    page = client.get("/chat").get_data(as_text=True)
    assert '<html lang="es">' in page and "Salir ya" in page


# -- the cookie ----------------------------------------------------------------------------------


def test_the_server_sets_a_signed_random_key(app, client, rt):
    resp = post(client, "/chat/messages", {"text": "hi", "chat_key": "chosen-by-me"})
    assert resp.status_code == 200
    assert "HttpOnly" in resp.headers["Set-Cookie"]
    key = session_of(app, client)["chat_key"]
    assert key != "chosen-by-me" and len(key) >= 40
    assert resident_of(rt, app, client).channel == "web"


@pytest.mark.parametrize("forge", ["wrong_secret", "tampered", "unsigned"])
def test_a_forged_cookie_starts_a_new_conversation(app, client, rt, forge):
    say(client, "I need food")  # the victim is now asked for a ZIP code
    victim = session_of(app, client)["chat_key"]
    name = app.config["SESSION_COOKIE_NAME"]
    real = client.get_cookie(name).value
    forged = {
        "wrong_secret": URLSafeTimedSerializer("guessed", salt="cookie-session").dumps({"chat_key": victim}),
        "tampered": real[:-3] + ("AAA" if not real.endswith("AAA") else "BBB"),
        "unsigned": json.dumps({"chat_key": victim}),
    }[forge]
    attacker = app.test_client()
    attacker.set_cookie(name, forged)
    answer = say(attacker, "64124")
    assert food_places(rt)[0] not in "\n".join(answer["replies"])
    assert session_of(app, attacker)["chat_key"] != victim
    with rt.db.sessions() as s:
        victim_id = s.scalar(select(Resident.id).where(Resident.chat_key == victim))
        bodies = s.scalars(
            select(Message.body).where(Message.resident_id == victim_id, Message.direction == "in")
        ).all()
    assert bodies == ["I need food"]


def test_two_visitors_never_see_each_other(app, client, rt):
    other = app.test_client()
    say(client, "I need food")
    assert food_places(rt)[0] not in "\n".join(say(other, "64124")["replies"])
    rt.outbound.send(resident_of(rt, app, client).id, "Hi, this is Ana from the team.", "caseworker")
    assert other.get("/chat/messages").get_json()["messages"] == []
    assert [m["body"] for m in client.get("/chat/messages").get_json()["messages"]] == [
        "Hi, this is Ana from the team."
    ]


# -- messages that arrive later ------------------------------------------------------------------------


def test_caseworker_replies_show_up_once(app, client, rt):
    say(client, "hi")
    resident = resident_of(rt, app, client)
    msg = rt.outbound.send(resident.id, "Hi, this is Ana. I can help.", "caseworker")
    assert msg.status == "delivered"
    rt.outbound.send(resident.id, "new referral", "notice", to="+18165550199")  # staff only
    data = client.get("/chat/messages?after=0").get_json()
    assert data["messages"] == [
        {"id": msg.id, "body": "Hi, this is Ana. I can help.", "from": "caseworker", "at": T0.isoformat()}
    ]
    assert data["last"] == msg.id
    assert client.get(f"/chat/messages?after={msg.id}").get_json() == {"messages": [], "last": msg.id}


def test_no_cookie_no_messages(client):
    resp = client.get("/chat/messages")
    assert resp.get_json() == {"messages": [], "last": 0}
    assert client.get_cookie("session") is None


def test_markup_is_returned_as_data(app, client, rt):
    say(client, "<script>alert(1)</script>")
    rt.outbound.send(resident_of(rt, app, client).id, "<img src=x onerror=alert(1)>", "caseworker")
    resp = client.get("/chat/messages")
    assert resp.mimetype == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.get_json()["messages"][0]["body"] == "<img src=x onerror=alert(1)>"


def test_the_page_puts_message_text_in_with_textcontent_only():
    js = (STATIC / "chat.js").read_text()
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js and "eval(" not in js
    assert "createTextNode(body" in js and "b.textContent = label" in js


# -- bad requests: a reason, never a 5xx ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, reason",
    [
        ('{"text": "hi"', "JSON object"),
        ('["hi"]', "JSON object"),
        ('"hi"', "JSON object"),
        ("null", "JSON object"),
        ("{}", "text must be a string"),
        ('{"text": 5}', "text must be a string"),
        ('{"text": null}', "text must be a string"),
        ('{"text": ["hi"]}', "text must be a string"),
        ('{"text": "   "}', "text is empty"),
        (json.dumps({"text": "x" * 2001}), "longer than 2000"),
        ('{"text": "\\ud800"}', "not valid text"),
    ],
)
def test_bad_messages_get_400_with_a_reason(client, body, reason):
    resp = client.post("/chat/messages", data=body, content_type="application/json", headers={"Origin": ORIGIN})
    assert resp.status_code == 400
    assert reason in resp.get_json()["error"]


def test_2000_characters_is_fine(client):
    say(client, "x" * 2000)


def test_wrong_content_type_and_foreign_origin_are_refused(client):
    resp = client.post("/chat/messages", data={"text": "hi"}, headers={"Origin": ORIGIN})
    assert resp.status_code == 415 and "JSON" in resp.get_json()["error"]
    for headers in (
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/chat"},
    ):
        resp = client.post("/chat/messages", json={"text": "hi"}, headers=headers)
        assert resp.status_code == 403, headers
    assert post(client, "/chat/messages", {"text": "hi"}, Origin="", Referer=f"{ORIGIN}/chat").status_code == 200


def test_after_must_be_an_id(client):
    resp = client.get("/chat/messages?after=abc")
    assert resp.status_code == 400 and "after" in resp.get_json()["error"]


def test_too_many_messages_get_429(client):
    say(client, "hi")  # from here on the visitor is counted by their conversation, not their address
    codes = [post(client, "/chat/messages", {"text": f"hi {i}"}).status_code for i in range(21)]
    assert codes[:20] == [200] * 20
    assert codes[20] == 429
    last = post(client, "/chat/messages", {"text": "hi"})
    assert last.status_code == 429 and "wait" in last.get_json()["error"]


# -- a number to text back (the two steps and the attacks: tests/test_verified_numbers.py) -----------------


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({}, "phone must be a string"),
        ({"phone": "call me", "consent": True}, "phone"),
        ({"phone": 8165550177, "consent": True}, "phone"),
        ({"phone": "1" * 41, "consent": True}, "phone"),
        ({"phone": "8165550177", "code": "123456"}, "consent"),
        ({"phone": "8165550177", "code": "123456", "consent": False}, "consent"),
        ({"phone": "8165550177", "code": "123456", "consent": "true"}, "consent"),
    ],
)
def test_bad_phone_requests_get_400(client, rt, payload, reason):
    resp = post(client, "/chat/phone", payload)
    assert resp.status_code == 400 and reason in resp.get_json()["error"]
    with rt.db.sessions() as s:
        assert s.scalars(select(AuditEvent)).all() == []


# -- leave now ----------------------------------------------------------------------------------


def test_leave_forgets_the_visitor_in_this_browser(app, client, rt):
    say(client, "I need food")
    before = session_of(app, client)["chat_key"]
    rt.outbound.send(resident_of(rt, app, client).id, "Hi, this is Ana.", "caseworker")
    resp = post(client, "/chat/leave", {})
    assert resp.status_code == 204
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    assert client.get("/chat/messages").get_json()["messages"] == []
    say(client, "hi")
    assert session_of(app, client)["chat_key"] != before


# -- the page ------------------------------------------------------------------------------------


def test_the_page_is_strict_and_self_contained(client):
    resp = client.get("/chat")
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert 'aria-live="polite"' in html and '<label for="text"' in html and 'id="leave"' in html
    # nothing loaded from another host; the only outside address is the Leave now link
    assert re.findall(r'(?:src|href)="(https?://[^"]+)"', html) == ["https://www.weather.gov"]
    assert "<script>" not in html and " style=" not in html and " on" + "click=" not in html
    for name in ("chat.js", "chat.css"):
        asset = client.get(f"/chat/static/{name}")
        assert asset.status_code == 200 and asset.headers["X-Content-Type-Options"] == "nosniff"
