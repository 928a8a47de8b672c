"""A laptop screen (1280x800) in Debian's chromium: the inbox queue holds ten cards and more, each
with its facts; the report's map draws circles at the ZIP centroids with the table beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from staff_helpers import PASSWORD, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)
from test_browser_inbox import ARGS, CHROMIUM, SHOTS, base_url, playwright  # noqa: F401 (fixtures)

from bot.conversation.crisis import CrisisKind
from bot.storage.models import Message, Referral, Resident

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}
VISIBLE_CARDS = """() => Array.from(document.querySelectorAll('#queue li.case'))
    .filter(card => card.getBoundingClientRect().bottom <= window.innerHeight).length"""


@pytest.fixture
def laptop(playwright):  # noqa: F811 (the fixture imported above)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
    page = browser.new_context(viewport=LAPTOP).new_page()
    page.set_default_timeout(10_000)
    yield page
    browser.close()


def log_in(page, base_url: str) -> None:  # noqa: F811
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", "ana@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{base_url}/inbox/")


def a_busy_morning(rt, now: datetime) -> None:
    """Sixteen open referrals: crises of each kind, SMS and web chat, English and Spanish, some answered."""
    kinds = [*CrisisKind, None, None, None]
    with rt.db.transaction() as s:
        for i in range(16):
            web = i % 5 == 4
            resident = Resident(
                phone=None if web else f"+1816555{2000 + i:04d}",
                chat_key=f"chat-{i}" if web else None,
                channel="web" if web else "sms",
                language="es" if i % 3 == 0 else "en",
                opted_out_at=now if i == 7 else None,
                created_at=now,
            )
            s.add(resident)
            s.flush()
            kind = kinds[i % len(kinds)]
            opened = now - timedelta(minutes=7 * i + 3)
            s.add(
                Referral(
                    resident_id=resident.id,
                    category=None if kind else ["housing", "food", "legal", "health"][i % 4],
                    zip_code=["64124", "64123", None][i % 3],
                    urgent=kind is not None,
                    crisis_kind=kind,
                    reason=f"crisis:{kind}" if kind else "asked_person",
                    created_at=opened,
                )
            )
            s.add(
                Message(
                    resident_id=resident.id,
                    direction="in",
                    channel=resident.channel,
                    kind="inbound",
                    body="help",
                    status="received",
                    created_at=opened,
                    updated_at=opened,
                )
            )


def rt_urgent(rt) -> int:
    with rt.db.sessions() as s:
        return s.scalar(select(func.count()).select_from(Referral).where(Referral.urgent))


def test_the_queue_holds_ten_cards_and_more_on_a_laptop_screen(rt, base_url, laptop, clock):  # noqa: F811
    add_caseworker(rt)
    a_busy_morning(rt, clock.now())
    log_in(laptop, base_url)
    SHOTS.mkdir(exist_ok=True)
    laptop.screenshot(path=str(SHOTS / "inbox-queue-laptop.png"))
    assert laptop.evaluate(VISIBLE_CARDS) >= 10
    first = laptop.locator("#queue li.case").first.inner_text()
    assert "Urgent" in first and "Waiting" in first and "Last text" in first
    queue = laptop.locator("#queue").inner_text()
    for fact in ("Spanish", "English", "Web chat", "SMS", "No verified number", "Do not text: opted out", "Overdose"):
        assert fact in queue, fact

    laptop.check("input[name=urgent]")
    laptop.select_option("select[name=lang]", "es")
    laptop.click(".filters button")
    laptop.wait_for_url("**urgent=1**")
    shown = laptop.locator("#queue li.case").count()
    summary = laptop.locator("#queue-summary .summary").inner_text()
    assert summary == f"{shown} of 16 open, {rt_urgent(rt)} urgent · {shown} match the filters", "totals stay in sight"
    for card in laptop.locator("#queue li.case").all_inner_texts():
        assert "Urgent" in card and "Spanish" in card


def a_closed_month(rt) -> None:
    """November 2026: requests from five ZIP codes, two of them from fewer than 5 people."""
    november = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    with rt.db.transaction() as s:
        places = [("64124", 9), ("64123", 6), ("64127", 5), ("64125", 2), ("64106", 3)]
        for z, (zip_code, people) in enumerate(places):
            for p in range(people):
                resident = Resident(phone=f"+1816555{3000 + 10 * z + p:04d}", channel="sms", created_at=november)
                s.add(resident)
                s.flush()
                s.add(
                    Referral(
                        resident_id=resident.id,
                        category="food",
                        zip_code=zip_code,
                        reason="resources",
                        created_at=november + timedelta(hours=p),
                    )
                )


def test_the_map_of_requests_reads_at_a_glance(rt, base_url, laptop):  # noqa: F811
    add_caseworker(rt)
    a_closed_month(rt)
    log_in(laptop, base_url)
    laptop.goto(f"{base_url}/reports/map?month=2026-11")
    svg, table = laptop.locator("svg.map"), laptop.locator("#map-table")
    assert svg.locator("circle").count() == 5
    assert "fewer than 5" in svg.inner_html() and "&lt;5" not in svg.inner_html()
    svg_box, table_box = svg.bounding_box(), table.bounding_box()
    assert table_box["x"] >= svg_box["x"] + svg_box["width"], "the table sits beside the map"
    assert svg_box["y"] + svg_box["height"] <= LAPTOP["height"] * 2
    SHOTS.mkdir(exist_ok=True)
    laptop.screenshot(path=str(SHOTS / "reports-map-laptop.png"), full_page=True)
    assert laptop.locator("nav.reports-nav a[aria-current=page]").inner_text() == "Map of requests"

    laptop.click("nav.reports-nav a:has-text('Program report')")
    laptop.wait_for_url("**/reports?month=2026-11")
    for pair in laptop.locator(".pair:has(figure)").all():  # every chart has its table beside it (or, wide, below)
        chart, table = pair.locator(".charts").bounding_box(), pair.locator("table").bounding_box()
        assert table["x"] >= chart["x"] + chart["width"] or table["y"] >= chart["y"] + chart["height"]
    laptop.screenshot(path=str(SHOTS / "reports-laptop.png"), full_page=True)


def test_the_reply_box_counts_characters_and_segments_as_the_text_will_go(rt, base_url, laptop, clock):  # noqa: F811
    add_caseworker(rt)
    a_busy_morning(rt, clock.now())
    log_in(laptop, base_url)
    laptop.goto(f"{base_url}/inbox/referrals/1")
    count = laptop.locator("#reply-count")
    laptop.fill("#reply-body", "I’m here to help")  # a curly quote goes out as ' : still GSM-7, one text
    assert count.inner_text() == "16 characters · 1 text(s), GSM-7"
    laptop.fill("#reply-body", "Hi 🙂")
    assert count.inner_text().startswith("4 characters · 1 text(s), UCS-2")
    laptop.fill("#reply-body", "a" * 290)
    assert count.inner_text() == "290 characters · 2 text(s), GSM-7 · 16 characters left before a third text"
    assert "warn" in count.get_attribute("class")
    laptop.fill("#reply-body", "a" * 310)
    assert count.inner_text() == "310 characters · 3 text(s), GSM-7 · This goes as 3 texts: shorten it if you can"
    laptop.screenshot(path=str(SHOTS / "inbox-reply-counter-laptop.png"), full_page=True)
