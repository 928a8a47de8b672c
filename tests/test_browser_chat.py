"""The web chat in a real browser: Debian's Chromium, driven by Playwright, on a phone-sized screen.

The app runs on a real local server; every request to another host is refused, and the
"Leave now" destination is answered locally, so no test touches the network.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import T0
from sqlalchemy import select
from werkzeug.serving import make_server

from bot import create_app
from bot.config import load_settings
from bot.storage.models import Resident

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
PHONE = {"width": 390, "height": 844}
NEUTRAL = "https://www.weather.gov/"

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live(env, clock, outbox) -> Iterator[tuple[str, object]]:
    """The real app on 127.0.0.1 over plain http (so no Secure-only cookie), in a thread; texts go to `outbox`."""
    env.pop("PUBLIC_BASE_URL", None)
    app = create_app(load_settings(env), clock=clock, sender=outbox)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app.extensions["peaceline"]
    server.shutdown()
    thread.join(5)
    app.extensions["peaceline"].db.dispose()


@pytest.fixture
def page(browser, live, tmp_path) -> Iterator:
    base, _ = live
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, base_url=base)
    context.set_default_timeout(5000)
    # Routes run newest first: the neutral site is answered here, anything else not ours is refused.
    context.route(lambda url: not url.startswith(base), lambda route: route.abort())
    context.route(f"{NEUTRAL}**", lambda route: route.fulfill(body="weather", content_type="text/plain"))
    page = context.new_page()
    problems: list[str] = []

    def console(m) -> None:
        # A wrong code is answered 400 on purpose; the browser logs that as a failed load.
        refused_code = m.text.endswith("status of 400 (BAD REQUEST)") and m.location["url"].endswith("/chat/phone")
        if m.type == "error" and not refused_code:
            problems.append(m.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    context.close()
    assert not [p for p in problems if "weather" not in p], problems  # no script error, no CSP refusal


def food_place(rt) -> str:
    return rt.directory.rank("food", zip_code="64124", now=T0, tz=rt.settings.program_timezone)[0].name


def test_tap_and_type_to_a_food_place_then_a_caseworker_writes(page, live, outbox, tmp_path):
    _, rt = live
    page.clock.install()  # the 10 s poll runs on a clock the test moves
    page.goto("/chat")
    page.get_by_role("button", name="Show me choices").tap()
    page.get_by_role("button", name="Food", exact=True).tap()
    expect(page.locator("#log")).to_contain_text("ZIP code")
    expect(page.get_by_label("Your message")).to_be_focused()  # no choices: back to typing
    page.get_by_label("Your message").fill("64124")
    page.get_by_label("Your message").press("Enter")
    expect(page.locator("#log")).to_contain_text(food_place(rt))
    expect(page.locator('#log .bot a[href^="tel:"]').first).to_be_visible()  # tap to call
    expect(page.locator("#options button")).to_have_count(2)  # want a person? yes / no
    page.screenshot(path=str(tmp_path / "food.png"))

    # A number for a person to text: a code goes to it first, and only the code saves it.
    page.get_by_text("Want a person to text you?").tap()
    page.get_by_label("Your phone number").fill("(816) 555-0177")
    page.get_by_role("button", name="Text me a code").tap()
    expect(page.get_by_text("Please check the box first.")).to_be_visible()
    assert outbox.sent == []
    page.get_by_label("Yes, you may text me at this number").check()
    page.get_by_role("button", name="Text me a code").tap()
    expect(page.get_by_text("We sent a code to that number. Type it below.")).to_be_visible()
    expect(page.get_by_label("Code from the text")).to_be_focused()
    page.screenshot(path=str(tmp_path / "code.png"))
    (text,) = outbox.to("+18165550177")
    code = re.search(r"\d{6}", text).group(0)
    page.get_by_label("Code from the text").fill(f"{(int(code) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Save my number").tap()
    expect(page.get_by_text("That code did not work. Check it, or ask for a new one.")).to_be_visible()
    with rt.db.sessions() as s:
        visitor = s.scalars(select(Resident).where(Resident.chat_key.is_not(None))).one()
    assert visitor.linked_resident_id is None  # a wrong code saves nothing
    page.get_by_label("Code from the text").fill(code)
    page.get_by_role("button", name="Save my number").tap()
    expect(page.get_by_text("Thank you. We saved your number.")).to_be_visible()
    expect(page.get_by_label("Code from the text")).to_be_hidden()

    with rt.db.sessions() as s:
        visitor = s.scalars(select(Resident).where(Resident.chat_key.is_not(None))).one()
        own = s.get(Resident, visitor.linked_resident_id)
    assert (visitor.phone, visitor.consent_texts, own.phone, own.channel) == (None, True, "+18165550177", "sms")
    # A web visitor with a proved number is texted there; the chat shows the message too.
    rt.outbound.send(visitor.id, "Hi, this is Ana from our team.", "caseworker")
    assert outbox.to("+18165550177")[-1] == "Hi, this is Ana from our team."
    page.clock.fast_forward(11_000)
    expect(page.locator("#log .caseworker")).to_have_text(re.compile("From our team.*Hi, this is Ana"))


def test_spanish_switch(page):
    page.goto("/chat")
    page.get_by_role("button", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading")).to_have_text("Línea de Ayuda del Noreste")
    expect(page.get_by_role("button", name="Enviar")).to_be_visible()
    expect(page.get_by_role("button", name="English")).to_be_visible()
    expect(page.locator("#log .bot").first).to_be_visible()  # the bot took the switch word
    page.get_by_label("Su mensaje").fill("comida")
    page.get_by_role("button", name="Enviar").click()
    expect(page.locator("#log")).to_contain_text("código postal")


def test_leave_now_goes_away_and_leaves_nothing(page, live):
    base, _ = live
    page.goto("/chat")
    page.get_by_label("Your message").fill("I need food")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#log")).to_contain_text("ZIP code")
    page.evaluate("sessionStorage.setItem('x', '1'); localStorage.setItem('y', '1')")
    assert any(c["name"] == "session" for c in page.context.cookies(base))

    expect(page.get_by_role("link", name="Leave now")).to_be_in_viewport()
    page.get_by_role("link", name="Leave now").tap()
    page.wait_for_url(f"{NEUTRAL}**")
    expect(page.locator("body")).to_have_text("weather")
    deadline = time.monotonic() + 5  # the server's answer to the leave call may land just after
    while any(c["name"] == "session" for c in page.context.cookies(base)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(c["name"] == "session" for c in page.context.cookies(base))

    page.goto("/chat")  # same tab, same origin: anything left behind would show here
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0
    expect(page.locator("#log li")).to_have_count(0)
