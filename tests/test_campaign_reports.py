"""Campaigns and the listening question in the reports: through the real webhook and follow-up sender,
counted with the same suppression and the same closed-month rule as every fine table, on the page,
in the CSV and from `peaceline report`. Answers in a resident's own words never appear."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot.casework import campaigns
from bot.casework.reports import HIDDEN, SMALL
from bot.cli import main
from bot.messaging.dispatch import dispatch_due
from bot.storage.models import Message

KC = ZoneInfo("America/Chicago")
OWN_WORDS = "the corner store at night"
MONTH = "/reports.csv?month=2026-11"


def kc(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=KC).astimezone(UTC)


@pytest.fixture
def heard(client, clock, rt) -> None:
    """Nine residents text the card's words on Nov 5 and ask for food; the check-in three days later
    gets a 1 from each, and the listening question: six say 1 (lights), two say 2 (jobs), one answers
    in their own words. A tenth texts HI without a code."""
    clock.set(kc(2))
    campaigns.add(rt.db, clock.now(), code="IA1129", name="Independence Ave", zips=["64124"])
    add_caseworker(rt)
    clock.set(kc(5))
    phones = [Phone(client, f"+1816555{i:04d}") for i in range(1, 11)]
    for phone in phones[:9]:
        for text in ("HI IA1129", "I need food", "64124", "no", "yes"):
            phone.text(text)
    phones[9].text("HI")
    clock.set(kc(8, 11))
    assert len(dispatch_due(rt)) == 9
    for i, phone in enumerate(phones[:9]):
        assert any("block safer" in reply for reply in phone.text("1"))
        phone.text("1" if i < 6 else "2" if i < 8 else OWN_WORDS)
    clock.set(datetime(2026, 12, 1, 16, tzinfo=UTC))


@pytest.fixture
def lead(client, rt):
    add_caseworker(rt, email="lead@example.org", name="Program Lead")
    assert Staff(client).login("lead@example.org").status_code == 302
    return client


def cells(client, query: str) -> dict[tuple[str, str, str], str]:
    body = client.get(query).get_data(as_text=True)
    assert OWN_WORDS not in body
    return {(r["section"], r["row"], r["column"]): r["value"] for r in csv.DictReader(io.StringIO(body))}


def test_a_closed_month_counts_answers_by_zip_and_campaign_with_suppression(lead, heard):
    got = cells(lead, MONTH)
    by_zip, by_campaign = "What would make the block safer, by ZIP code", "What would make the block safer, by campaign"
    for table, row in ((by_zip, "64124"), (by_campaign, "IA1129: Independence Ave")):
        assert got[table, row, "Jobs"] == SMALL  # two people
        assert got[table, row, "Lights"] == HIDDEN  # else 8 - 6 gives the two away
        assert got[table, row, "Total"] == "8"  # their own words are not counted
        assert got[table, "Total", "Things for kids"] == "0"
    assert got[by_campaign, "No campaign", "Total"] == "0"
    results = "Campaigns: people reached, referrals, outcomes"
    assert got[results, "IA1129: Independence Ave", "Residents reached"] == HIDDEN  # else 10 - 9 gives one away
    assert got[results, "IA1129: Independence Ave", "Closed: got help"] == "9"
    assert got[results, "No campaign", "Residents reached"] == SMALL  # the one who texted HI
    assert got[results, "Total", "Residents reached"] == "10"
    assert got["Requests by campaign and need", "IA1129: Independence Ave", "Food"] == "9"


def test_other_ranges_show_only_totals(lead, heard):
    got = cells(lead, "/reports.csv?since=2026-11-01&until=2026-11-29")
    assert got["What would make the block safer", "Total", "Answers"] == "8"
    assert not any(row == "64124" or row.startswith("IA1129") for _, row, _ in got)


def test_the_page_and_the_cli_show_the_same(lead, heard, env):
    page = lead.get("/reports?month=2026-11").get_data(as_text=True)
    assert "What would make the block safer, by ZIP code" in page and OWN_WORDS not in page
    assert "IA1129: Independence Ave" in page
    text = CliRunner().invoke(main, ["report", "--month", "2026-11"], env=env).output
    assert "What would make the block safer, by campaign" in text and OWN_WORDS not in text
    cli = CliRunner().invoke(main, ["report", "--month", "2026-11", "--format", "csv"], env=env)
    assert lead.get(MONTH).get_data(as_text=True) == cli.stdout_bytes.decode()


def test_their_own_words_stay_in_the_thread_for_staff(lead, heard, rt):
    with rt.db.sessions() as s:
        assert OWN_WORDS in [m.body for m in s.scalars(select(Message).where(Message.direction == "in"))]
