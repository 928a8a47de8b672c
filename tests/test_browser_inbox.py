"""A caseworker's phone browser against the real app on a real socket: log in, see a new
referral arrive without a reload, claim it, reply, close it. Debian's chromium, driven by Playwright."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import ROOT, Phone, sign
from sqlalchemy import select
from staff_helpers import PASSWORD, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)
from werkzeug.serving import make_server

from bot.storage.models import Message, Referral

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE_SCREEN = {"width": 390, "height": 844}
SHOTS = ROOT / "test-output"  # ignored by git


@pytest.fixture
def playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def base_url(app):
    """The app on 127.0.0.1, a free port, in a thread."""
    app.config["INBOX_POLL_SECONDS"] = 1  # the page polls every 10 s in production
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def page(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    context = browser.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    browser.close()


def text_the_program(base_url: str, body: str) -> None:
    """A resident's text over HTTP to the live server, signed as Twilio signs it."""
    params = Phone(client=None).payload(body)
    request = urllib.request.Request(
        f"{base_url}/sms", data=urlencode(params).encode(), headers={"X-Twilio-Signature": sign("/sms", params)}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def test_a_caseworker_works_a_new_referral_from_a_phone(rt, base_url, page):
    ana = add_caseworker(rt)
    SHOTS.mkdir(exist_ok=True)
    problems: list[str] = []  # script errors and CSP refusals show up in the console
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(f"{base_url}/inbox/")
    assert "/login?next=" in page.url
    page.fill("input[name=email]", "ana@example.org")
    page.fill("input[name=password]", "not the password")
    page.click("button:has-text('Log in')")
    assert page.locator(".flash.error").inner_text() == "Wrong email or password."

    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base_url}/inbox/")
    assert "Nothing here right now" in page.locator("#queue").inner_text()

    page.evaluate("window.stillTheSamePage = true")
    text_the_program(base_url, "talk to a person")
    with rt.db.sessions() as s:
        rid = s.scalars(select(Referral.id)).one()
    page.locator(f"#queue [data-referral='{rid}']").wait_for()  # arrives by the poll
    assert page.evaluate("window.stillTheSamePage") is True, "the page reloaded"
    assert "+1816•••0123" in page.locator("#queue").inner_text()
    page.screenshot(path=str(SHOTS / "inbox-queue-phone.png"), full_page=True)

    page.click(f"button:has-text('Claim #{rid}')")
    page.wait_for_url(f"{base_url}/inbox/referrals/{rid}")
    assert "is yours" in page.locator(".flash.ok").inner_text()

    page.fill("#reply-body", "Hi, this is Ana from the help line. What do you need?")
    page.click("#reply button")
    assert page.locator(".flash.ok").inner_text() == "Sent."
    assert "What do you need?" in page.locator("#thread").inner_text()
    with rt.db.sessions() as s:
        reply = s.scalars(select(Message).where(Message.kind == "caseworker")).one()
    assert (reply.direction, reply.caseworker_id, reply.referral_id) == ("out", ana, rid)
    page.screenshot(path=str(SHOTS / "inbox-thread-phone.png"), full_page=True)

    page.select_option("#outcome", "got_help")
    page.click(f"button:has-text('Close #{rid}')")
    page.wait_for_url(f"{base_url}/inbox/")
    assert f"Referral #{rid} closed." in page.locator(".flash.ok").inner_text()
    with rt.db.sessions() as s:
        closed = s.get(Referral, rid)
    assert (closed.status, closed.outcome) == ("closed", "got_help")
    assert [p for p in problems if "401" not in p] == []  # the login page's refusal is a 401 by design


def test_the_totals_follow_the_queue_without_a_reload(rt, base_url, page, clock):
    """60 calm referrals wait; an urgent SMS arrives: it shows first and the totals move, by the poll alone."""
    from datetime import timedelta

    from bot.storage.models import Resident

    add_caseworker(rt)
    with rt.db.transaction() as s:
        someone = Resident(phone="+18165550142", channel="sms", created_at=clock.now())
        s.add(someone)
        s.flush()
        s.add_all(
            Referral(resident_id=someone.id, reason="asked_person", created_at=clock.now() - timedelta(hours=1))
            for _ in range(60)
        )
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", "ana@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base_url}/inbox/")
    summary = page.locator("#queue-summary .summary")
    assert summary.inner_text() == "50 of 60 open, 0 urgent · showing 1–50, page 1 of 2"

    text_the_program(base_url, "he is going to kill me")
    page.locator("#queue-summary .summary:has-text('of 61 open, 1 urgent')").wait_for()  # by the poll
    with rt.db.sessions() as s:
        urgent = s.scalars(select(Referral.id).where(Referral.urgent)).one()
    assert page.locator("#queue li").first.get_attribute("data-referral") == str(urgent)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "inbox-queue-totals-phone.png"))
    page.click("a:has-text('Next page')")
    page.wait_for_url(f"{base_url}/inbox/?show=open&page=2")
    assert summary.inner_text() == "11 of 61 open, 1 urgent · showing 51–61, page 2 of 2"
