"""The canvasser's form on a phone-sized Chromium against the real app: prove the number, lose the
network, send anyway (kept on the phone in IndexedDB), get the network back (sent, then wiped), and
log out (what was typed is wiped too). Debian's chromium, driven by Playwright."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from staff_helpers import PASSWORD, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)
from test_browser_inbox import SHOTS, base_url, page, playwright  # noqa: F401 (fixtures)

from bot.casework import campaigns
from bot.storage.models import FollowUp, Referral, Resident

pytestmark = pytest.mark.browser

NUMBER = "+18165550123"
STORED = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("peaceline-canvass", 1);
  req.onupgradeneeded = () => req.result.createObjectStore("visits", { keyPath: "id" });
  req.onerror = () => reject(req.error);
  req.onsuccess = () => {
    const all = req.result.transaction("visits").objectStore("visits").getAll();
    all.onsuccess = () => { req.result.close(); resolve(all.result.map((r) => r.id)); };
  };
})"""


def stored_soon(tab, ids: list[str]) -> None:
    """What the page keeps in IndexedDB becomes `ids` (it saves as it goes, without blocking typing)."""
    for _ in range(50):
        if tab.evaluate(STORED) == ids:
            return
        tab.wait_for_timeout(100)
    assert tab.evaluate(STORED) == ids


@pytest.fixture
def sender(outbox):
    return outbox


def test_a_visit_typed_offline_is_kept_on_the_phone_then_sent_then_wiped(rt, clock, base_url, page, outbox):  # noqa: F811 - the fixtures imported above
    campaigns.add(rt.db, clock.now(), code="IA1129", name="Independence Ave", zips=["64124"])
    add_caseworker(rt, email="cam@example.org", name="Cam", role="canvasser")
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console", lambda msg: problems.append(msg.text) if msg.type == "error" and "net::" not in msg.text else None
    )

    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", "cam@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base_url}/canvass")

    page.fill("#phone", "(816) 555-0123")
    page.check("#consent")
    page.click("#send-code")
    page.locator("#status", has_text="Code sent").wait_for()
    code = re.search(r"\d{6}", outbox.to(NUMBER)[-1]).group(0)
    page.fill("#code", code)
    page.click("#check-code")
    page.locator("#proven").wait_for()

    page.context.set_offline(True)
    page.check("input[name=needs][value=food]")
    page.fill("#zip", "64124")
    page.select_option("#language", "es")
    page.fill("#note", "Two kids at home.")
    page.click("#send")
    page.locator("#status", has_text="saved on this phone").wait_for()
    waiting = page.evaluate(STORED)
    assert len(waiting) == 1 and waiting[0].startswith("visit:")  # the one visit, and no draft left
    with rt.db.sessions() as s:
        assert s.scalars(select(Referral)).all() == []
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "canvass-offline-phone.png"), full_page=True)

    page.context.set_offline(False)  # the 'online' event sends it
    page.locator("#status", has_text="Sent: 1 referral").wait_for()
    assert page.evaluate(STORED) == []
    with rt.db.sessions() as s:
        resident = s.scalars(select(Resident).where(Resident.channel == "sms")).one()
        referral = s.scalars(select(Referral)).one()
        templates = sorted(f.template for f in s.scalars(select(FollowUp)))
    assert (resident.phone, resident.language, resident.zip_code) == (NUMBER, "es", "64124")
    assert resident.campaign_id is not None and resident.consent_recorded_at is not None
    assert (referral.category, referral.reason, referral.resident_id) == ("food", "canvass", resident.id)
    assert templates == ["checkin", "welcome"]

    page.fill("#phone", "(816) 555-0199")  # a new visit, typed: a draft on the phone
    stored_soon(page, ["draft"])
    page.click("button:has-text('Log out')")
    page.wait_for_url(f"{base_url}/login")
    assert page.evaluate(STORED) == []
    assert problems == []
