"""Program reports: exact numbers, small-cell suppression, and the same numbers on the page, CSV and CLI.

The data set: twelve residents text in through the signed webhook (five of them text STOP), and
referrals, unmet needs and check-ins are rows with fixed times, in November 2026, Kansas City time.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import T0, Phone
from sqlalchemy import select
from staff_helpers import Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot.casework.reports import (
    HIDDEN,
    NO_RATE,
    NOT_ENOUGH,
    SMALL,
    PeriodError,
    build_report,
    parse_period,
    tally,
    to_csv,
    to_json,
)
from bot.cli import main
from bot.storage.models import AuditEvent, FollowUp, Referral, Resident

KC = ZoneInfo("America/Chicago")
SINCE, UNTIL = "2026-11-02", "2026-11-29"  # four whole weeks, Monday to Sunday


def kc(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> datetime:
    """A moment in Kansas City, as the UTC the database stores."""
    return datetime(2026, month, day, hour, minute, tzinfo=KC).astimezone(UTC)


def number(i: int) -> str:
    return f"+1816555{i:04d}"


# -- the data set ------------------------------------------------------------------------------


@pytest.fixture
def people(client, clock, rt) -> dict[int, int]:
    """P1..P12 text in on Nov 5; P8..P12 text STOP on Nov 20; P13 texted (and left) in October."""
    clock.set(kc(1, month=10))
    Phone(client, number(13)).text("hi")
    Phone(client, number(13)).text("STOP")
    clock.set(kc(5))
    for i in range(1, 13):
        Phone(client, number(i)).text("hi")
    clock.set(kc(20))
    for i in range(8, 13):
        Phone(client, number(i)).text("STOP")
    clock.set(T0)
    with rt.db.sessions() as s:
        ids = {phone: id_ for phone, id_ in s.execute(select(Resident.phone, Resident.id))}
    return {i: ids[number(i)] for i in range(1, 14)}


ZIPS = {
    **dict.fromkeys(range(1, 6), "64124"),
    **dict.fromkeys((6, 7, 11), "64125"),
    **dict.fromkeys((8, 9, 10), "64123"),
}
# (need, day in November, residents): 38 referrals, all opened inside the range.
ASKED = [
    ("housing", 10, [1, 2]),
    ("food", 10, range(1, 7)),
    ("health", 10, range(1, 10)),
    ("housing", 18, [3, 4, 5]),
    ("food", 18, range(1, 8)),
    ("health", 18, range(1, 11)),
    ("safety", 23, [11]),
]
CONTACT_HOURS = [0.5, 1, 2, 3, 4, 6, 8, 24, 48]  # health on Nov 10, P1..P9


@pytest.fixture
def dataset(rt, people) -> dict[int, int]:
    rows: list = []
    for need, day, who in ASKED:
        for p in who:
            rows.append(
                Referral(
                    resident_id=people[p],
                    category=need,
                    zip_code=ZIPS[p],
                    reason="resources",
                    created_at=kc(day),
                    **_fate(need, day, p),
                )
            )
    # Opened outside the range in Kansas City, though the first one is inside it in UTC.
    rows += [
        Referral(
            resident_id=people[1], category="legal", zip_code="64124", reason="resources", created_at=kc(1, 23, 30)
        ),
        Referral(
            resident_id=people[1], category="legal", zip_code="64124", reason="resources", created_at=kc(30, 0, 30)
        ),
    ]
    rows += [
        _unmet(people[1], "food", "no_resource", kc(10, 8)),  # same day as a referral: one request
        *(_unmet(people[p], "health", "no_resource", kc(18, 8)) for p in range(1, 6)),
        _unmet(people[3], "housing", "declined", kc(18, 10)),
    ]
    rows += _followups(people)
    with rt.db.transaction() as s:
        s.add_all(rows)
    return people


def _fate(need: str, day: int, p: int) -> dict:
    """How each referral went: closed outcomes and first-contact times."""
    if (need, day) == ("health", 10):
        return dict(
            status="closed",
            outcome="got_help",
            closed_at=kc(20),
            contacted_at=kc(day) + timedelta(hours=CONTACT_HOURS[p - 1]),
        )
    if (need, day) == ("food", 10):
        return dict(status="closed", outcome="no_longer_needed", closed_at=kc(20))
    if (need, day) == ("food", 18) and p <= 2:
        return dict(status="closed", outcome="could_not_reach", closed_at=kc(25))
    if (need, day) == ("health", 18) and p == 1:
        return dict(status="closed", outcome="referred_elsewhere", closed_at=kc(25))
    return dict(status="new")


def _unmet(resident_id: int, need: str, reason: str, at: datetime) -> AuditEvent:
    return AuditEvent(action="need.unmet", resident_id=resident_id, at=at, detail={"category": need, "reason": reason})


def _followups(people: dict[int, int]) -> list[FollowUp]:
    """Ten check-ins went out in range, six answered; a failed, a pending and an October one do not count."""
    sent = [
        FollowUp(
            resident_id=people[p],
            template="checkin",
            due_at=kc(22),
            status="sent",
            sent_at=kc(22),
            answer="got_help" if p <= 6 else None,
            answered_at=kc(22, 12) if p <= 6 else None,
        )
        for p in range(1, 11)
    ]
    return sent + [
        FollowUp(resident_id=people[11], template="checkin", due_at=kc(22), status="failed", sent_at=kc(22)),
        FollowUp(resident_id=people[12], template="checkin", due_at=kc(28)),
        FollowUp(
            resident_id=people[1], template="checkin", due_at=kc(20, month=10), status="sent", sent_at=kc(20, month=10)
        ),
    ]


def report_of(rt, since: str | None = SINCE, until: str | None = UNTIL, month: str | None = None):
    period = parse_period(since, until, rt.clock.now(), KC, month)
    with rt.db.sessions() as s:
        return build_report(s, period, list(rt.directory.categories))


def table(report, key: str) -> dict[str, list[str]]:
    section = next(s for s in report.sections if s.key == key)
    return {row[0]: row[1:] for row in section.rows}


def header(report, key: str) -> list[str]:
    return next(s for s in report.sections if s.key == key).header


# -- the numbers --------------------------------------------------------------------------------


def test_requests_by_need_and_week_hide_small_cells_and_their_complements(rt, dataset):
    got = table(report_of(rt), "requests_by_need_and_week")
    assert header(report_of(rt), "requests_by_need_and_week") == [
        "Week",
        "Housing",
        "Food",
        "Health",
        "Legal",
        "Recovery",
        "Safety",
        "Violence",
        "Loss",
        "Total",
    ]
    # Housing has 2 and 3 people: "<5". Food (6 and 7 people) is hidden as the complement in each
    # week, since the week's total would otherwise give housing away. Health (9, 10) is exact.
    # The one safety request makes week 4's total "<5", so the totals column hides week 2's
    # total too, and the need totals hide housing (5 people, the smallest) beside safety.
    assert got == {
        "Week of 2026-11-02": ["0", "0", "0", "0", "0", "0", "0", "0", "0"],
        "Week of 2026-11-09": [SMALL, HIDDEN, "9", "0", "0", "0", "0", "0", HIDDEN],
        "Week of 2026-11-16": [SMALL, HIDDEN, "10", "0", "0", "0", "0", "0", "20"],
        "Week of 2026-11-23": ["0", "0", "0", "0", "0", SMALL, "0", "0", SMALL],
        "Total": [HIDDEN, "13", "19", "0", "0", SMALL, "0", "0", "38"],
    }


def test_requests_by_zip_and_need_for_a_closed_month(rt, dataset):
    # November whole (T0 is Dec 1): the two legal requests of P1 (Nov 1 and Nov 30) count too.
    # 64124: P1..P5, 27 requests (exactly 5 people: shown). 64123 and 64125: 3 people each.
    report = report_of(rt, month="2026-11")
    assert header(report, "requests_by_zip") == [
        "ZIP code",
        "Housing",
        "Food",
        "Health",
        "Legal",
        "Recovery",
        "Safety",
        "Violence",
        "Loss",
        "Total",
    ]
    assert table(report, "requests_by_zip") == {
        "64123": ["0", "0", SMALL, "0", "0", "0", "0", "0", SMALL],
        "64124": ["5", HIDDEN, "10", SMALL, "0", "0", "0", "0", "27"],  # food hidden: 27 - 5 - 10 would give legal away
        "64125": ["0", SMALL, SMALL, "0", "0", SMALL, "0", "0", SMALL],
        "Total": ["5", "13", "19", SMALL, "0", SMALL, "0", "0", "40"],
    }
    assert table(report, "requests_by_zip")["Total"] == table(report, "requests_by_need_and_week")["Total"], (
        "the need totals are the same cells in both tables, hidden alike"
    )


def test_a_small_zip_gets_its_complements_in_the_month(rt, people):
    with rt.db.transaction() as s:
        s.add_all(
            Referral(
                resident_id=people[p],
                category="food",
                zip_code="64124" if p <= 6 else "64123",
                reason="resources",
                created_at=kc(10),
            )
            for p in range(1, 9)
        )
    got = table(report_of(rt, month="2026-11"), "requests_by_zip")
    assert got["64123"][1] == SMALL and got["64124"][1] == HIDDEN and got["64124"][-1] == HIDDEN
    assert got["Total"][-1] == "8"


def test_needs_not_met(rt, dataset):
    got = table(report_of(rt), "needs_not_met")
    assert header(report_of(rt), "needs_not_met") == [
        "Need",
        "No place to send them",
        "Said no thanks",
        "Could not reach them",
        "Total",
    ]
    # Health had no place for 5 people, yet is hidden: the column total (6) minus health would
    # give food's "<5" away. Then health's row total would give it away, so it is hidden too.
    assert got["Housing"] == ["0", SMALL, "0", SMALL]
    assert got["Food"] == [SMALL, "0", SMALL, SMALL]
    assert got["Health"] == [HIDDEN, "0", "0", HIDDEN]
    assert got["Legal"] == got["Recovery"] == got["Safety"] == ["0", "0", "0", "0"]
    assert got["Total"] == ["6", SMALL, SMALL, "9"]


def test_referral_outcomes_and_closed_loop_rates(rt, dataset):
    report = report_of(rt)
    assert table(report, "referral_outcomes") == {
        "Got help": ["9", "50%"],
        "Could not get help": ["0", "0%"],
        "No longer needed": ["6", "33%"],
        "Could not reach them": [SMALL, HIDDEN],  # a share would give the count away
        "Sent to another program": [SMALL, HIDDEN],
        "Total": ["18", "100%"],
    }
    loop = table(report, "closing_the_loop")
    assert loop["Referrals closed, of referrals opened"] == ["18", "38", "47%"]
    assert loop["Check-ins answered, of check-in texts sent"] == ["6", "10", "60%"]
    assert loop["People who opted out, of people who texted in"] == ["5", "12", "42%"]


def test_time_from_handoff_to_first_contact(rt, dataset):
    assert table(report_of(rt), "time_to_first_contact") == {
        "Referrals contacted": ["9"],
        "Median hours": ["4.0 (n = 9)"],
        "90th percentile hours": ["28.8 (n = 9)"],
    }  # PERCENTILE.INC: 24 + 0.2 * (48 - 24)


def test_rates_and_times_from_fewer_than_five_people_say_not_enough_data(rt, people):
    with rt.db.transaction() as s:
        s.add_all(
            Referral(
                resident_id=people[p],
                category="food",
                reason="resources",
                created_at=kc(10),
                status="closed",
                outcome="got_help",
                contacted_at=kc(10, 10),
            )
            for p in (1, 2, 3, 4)
        )
    report = report_of(rt)
    # "<5" only ever counts people: never a median, a percentile or a rate.
    assert table(report, "closing_the_loop")["Referrals closed, of referrals opened"] == [SMALL, SMALL, NOT_ENOUGH]
    assert table(report, "time_to_first_contact") == {
        "Referrals contacted": [SMALL],
        "Median hours": [NOT_ENOUGH],
        "90th percentile hours": [NOT_ENOUGH],
    }
    loop = table(report, "closing_the_loop")
    assert loop["Check-ins answered, of check-in texts sent"] == ["0", "0", NO_RATE], "no rate out of nobody"
    assert loop["People who opted out, of people who texted in"] == ["5", "12", "42%"]


def test_a_small_part_of_a_big_whole_shows_no_rate(rt, people):
    with rt.db.transaction() as s:
        s.add_all(
            FollowUp(
                resident_id=people[p],
                template="checkin",
                due_at=kc(22),
                status="sent",
                sent_at=kc(22),
                answer="got_help" if p <= 2 else None,
                answered_at=kc(22, 12) if p <= 2 else None,
            )
            for p in range(1, 13)
        )
    # 2 of 12 would be 17%, and with 12 shown that names the 2 people.
    assert table(report_of(rt), "closing_the_loop")["Check-ins answered, of check-in texts sent"] == [
        SMALL,
        "12",
        HIDDEN,
    ]


def test_the_date_range_is_in_program_time_and_excludes_what_is_outside(rt, dataset):
    week = table(report_of(rt, "2026-11-16", "2026-11-22"), "requests_by_need_and_week")
    assert list(week) == ["Week of 2026-11-16", "Total"]
    assert week["Total"][-1] == "20"
    # Nov 1 23:30 and Nov 30 00:30 in Kansas City are Nov 2 and Nov 30 in UTC: only local days count.
    legal = table(report_of(rt, "2026-11-01", "2026-11-30"), "requests_by_need_and_week")["Total"]
    assert legal[3] == SMALL
    assert table(report_of(rt), "requests_by_need_and_week")["Total"][3] == "0"
    # The October opt-out and check-in are outside November.
    assert table(report_of(rt, "2026-10-01", "2026-10-31"), "closing_the_loop")[
        "People who opted out, of people who texted in"
    ] == [SMALL, SMALL, NOT_ENOUGH]


def test_default_range_is_the_last_90_days_up_to_today_in_program_time():
    # T0 is 10:00 on Dec 1 in Kansas City; at 02:00 UTC on Dec 2 it is still Dec 1 there.
    period = parse_period(None, None, datetime(2026, 12, 2, 2, 0, tzinfo=UTC), KC)
    assert (period.since, period.until) == (date(2026, 9, 3), date(2026, 12, 1))
    assert period.start == datetime(2026, 9, 3, 5, 0, tzinfo=UTC)  # CDT, UTC-5
    assert period.end == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # CST, UTC-6
    assert period.weeks()[:2] == [date(2026, 9, 3), date(2026, 9, 7)]  # the first week is cut at `since`


def test_a_need_asked_through_the_bot_is_counted(client, clock, rt):
    """The real path: a resident texts the menu, picks food, gives a ZIP; the report sees one request."""
    resident = Phone(client, number(40))
    for text in ("hi", "2", "64124"):
        resident.text(text)
    with rt.db.sessions() as s:
        assert s.scalar(select(Referral.category)) == "food"
    got = table(report_of(rt, "2026-11-01", "2026-12-01"), "requests_by_need_and_week")
    assert got["Total"] == ["0", SMALL, "0", "0", "0", "0", "0", "0", SMALL]


# -- suppression on its own -------------------------------------------------------------------


def _people(n: int, first: int = 0) -> list[int]:
    return list(range(first, first + n))


def test_complementary_suppression_repeats_until_no_sum_has_a_single_hidden_member():
    facts = (
        [(p, "A", "x") for p in _people(6)]
        + [(p, "A", "y") for p in _people(2, 100)]
        + [(p, "A", "z") for p in _people(7, 200)]
        + [(p, "B", "x") for p in _people(8, 300)]
        + [(p, "B", "z") for p in _people(9, 400)]
    )
    grid = tally(facts, [("A", "A"), ("B", "B")], [("x", "x"), ("y", "y"), ("z", "z")])
    shown = {k: c.shown for k, c in grid.cells.items()}
    assert shown == {
        ("A", "x"): HIDDEN,
        ("A", "y"): SMALL,
        ("A", "z"): HIDDEN,
        ("B", "x"): HIDDEN,
        ("B", "y"): "0",
        ("B", "z"): HIDDEN,
    }
    assert [grid.row_totals[r].shown for r in "AB"] == ["15", "17"]
    assert [grid.column_totals[c].shown for c in "xyz"] == [HIDDEN, SMALL, "16"]
    assert grid.total.shown == "32"
    for line in grid.sums():
        assert sum(1 for c in line if c.mark) != 1, "no sum can be solved for one hidden number"


def test_people_not_rows_decide_suppression():
    # 12 requests from 4 people: hidden; 5 requests from 5 people: shown.
    grid = tally(
        [(p % 4, "food", "n") for p in range(12)] + [(p, "legal", "n") for p in range(10, 15)],
        [("food", "Food"), ("legal", "Legal")],
        [("n", "Requests")],
    )
    assert grid.cells["food", "n"].shown == SMALL
    assert grid.cells["legal", "n"].shown == HIDDEN  # the complement: 17 - 5 would give food away
    assert grid.total.shown == "17"


# -- the same numbers everywhere ------------------------------------------------------------------


@pytest.fixture
def logged_in(client, rt):
    add_caseworker(rt, email="lead@example.org", name="Program Lead")
    assert Staff(client).login("lead@example.org").status_code == 302
    return client


def test_reports_need_a_login(client):
    for path in ("/reports", f"/reports.csv?since={SINCE}&until={UNTIL}"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_page_shows_charts_and_tables_with_the_suppressed_numbers(logged_in, rt, dataset):
    resp = logged_in.get("/reports?month=2026-11")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert html.count('role="img"') == 6 and "<title id=" in html
    assert "<td>&lt;5</td>" in html and "<td>*</td>" in html and "<td>27</td>" in html
    assert "64123: &lt;5" in html, "the chart's description carries the suppressed value"
    assert "src=" not in html and "https://" not in html, "no external assets"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]
    assert logged_in.get("/reports/static/report.css").status_code == 200


def test_page_defaults_to_90_days_and_explains_a_bad_date(logged_in):
    html = logged_in.get("/reports").get_data(as_text=True)
    assert 'value="2026-09-03"' in html and 'value="2026-12-01"' in html
    resp = logged_in.get("/reports?since=2026-13-01")
    assert resp.status_code == 400 and "is not a date like" in resp.get_data(as_text=True)
    assert logged_in.get("/reports.csv?since=2026-11-30&until=2026-11-01").status_code == 400
    assert logged_in.get("/reports.csv?since=1900-01-01").status_code == 400


def test_csv_and_cli_print_the_same_suppressed_numbers(logged_in, rt, dataset, env):
    resp = logged_in.get("/reports.csv?month=2026-11")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="peaceline-report-2026-11-01-to-2026-11-30.csv"'
    )
    body = resp.get_data(as_text=True)
    assert body == to_csv(report_of(rt, month="2026-11"))
    assert logged_in.get("/reports.csv?since=2026-11-01&until=2026-11-30").get_data(as_text=True) == body
    cells = {(r["section"], r["row"], r["column"]): r["value"] for r in csv.DictReader(io.StringIO(body))}
    assert cells["Requests by ZIP code and need", "64123", "Total"] == SMALL
    assert cells["Requests by ZIP code and need", "64124", "Total"] == "27"
    assert cells["Requests by need and week", "Week of 2026-11-09", "Food"] == HIDDEN
    assert cells["Time from hand-off to first contact", "Median hours", "Value"] == "4.0 (n = 9)"

    runner = CliRunner()
    args = ["report", "--month", "2026-11"]
    cli_csv = runner.invoke(main, [*args, "--format", "csv"], env=env, catch_exceptions=False)
    assert cli_csv.exit_code == 0 and cli_csv.stdout_bytes.decode() == body
    cli_json = json.loads(runner.invoke(main, [*args, "--format", "json"], env=env).output)
    assert cli_json == json.loads(to_json(report_of(rt, month="2026-11"))) and cli_json["detailed"] is True
    zips = next(s for s in cli_json["sections"] if s["key"] == "requests_by_zip")["rows"]
    assert [row[0] for row in zips] == ["64123", "64124", "64125", "Total"] and zips[0][-1] == SMALL
    text = runner.invoke(main, args, env=env).output
    assert "Requests by ZIP code and need" in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("64123")] == [SMALL]


def test_cli_names_a_bad_date(env):
    result = CliRunner().invoke(main, ["report", "--until", "yesterday"], env=env)
    assert result.exit_code == 2 and "--until" in result.output and "not a date" in result.output


def test_an_empty_range_reads_plainly(rt):
    report = report_of(rt)
    assert table(report, "requests_by_zip") == {"Total": ["0"]}
    assert table(report_of(rt, month="2026-11"), "requests_by_zip") == {
        "Total": ["0", "0", "0", "0", "0", "0", "0", "0", "0"]
    }
    assert table(report, "referral_outcomes")["Total"] == ["0", NO_RATE]
    assert table(report, "closing_the_loop")["Referrals closed, of referrals opened"] == ["0", "0", NO_RATE]


# -- differencing: fine tables only for closed calendar months ----------------------------------------------

ZIP_ROW = re.compile(r"^\d{5}$")


def csv_cells(client, query: str) -> dict[tuple[str, str, str], str]:
    resp = client.get(f"/reports.csv?{query}")
    assert resp.status_code == 200
    return {
        (r["section"], r["row"], r["column"]): r["value"]
        for r in csv.DictReader(io.StringIO(resp.get_data(as_text=True)))
    }


def fine_cells(cells: dict[tuple[str, str, str], str]) -> dict[tuple[str, str, str], str]:
    """Every number that names a ZIP code or a crisis kind: what differencing could single a person out in."""
    return {
        k: v
        for k, v in cells.items()
        if ZIP_ROW.match(k[1]) or k[0] == "Crises by kind" and k[1] != "Total" and k[2] != "note"
    }


@pytest.fixture
def safety_in_64124(rt, people) -> None:
    """The issue's case: six people in 64124 ask about safety on Nov 10, a seventh on Nov 11."""
    rows = [
        Referral(
            resident_id=people[p],
            category="safety",
            zip_code="64124",
            reason="crisis:abuse",
            urgent=True,
            created_at=kc(10 if p <= 6 else 11, 14),
        )
        for p in range(1, 8)
    ]
    rows += [
        Referral(resident_id=people[p], category="food", zip_code="64125", reason="resources", created_at=kc(10, 15))
        for p in range(8, 13)
    ]
    with rt.db.transaction() as s:
        s.add_all(rows)


def test_two_ranges_a_day_apart_cannot_give_away_one_persons_need_in_a_zip(logged_in, rt, safety_in_64124):
    """The replay: /reports.csv for Nov 10 alone, then Nov 10-11, used to show 6 and 7 for 64124."""
    one_day = csv_cells(logged_in, "since=2026-11-10&until=2026-11-10")
    two_days = csv_cells(logged_in, "since=2026-11-10&until=2026-11-11")
    assert fine_cells(one_day) == fine_cells(two_days) == {}, "no ZIP code or crisis kind for chosen dates"
    for cells in (one_day, two_days):
        assert {k[1] for k in cells if k[0] == "Requests by ZIP code and need"} == {"Total", "Why only the total"}
        assert "calendar month" in cells["Requests by ZIP code and need", "Why only the total", "note"]
    # What is left differs by one person on one day, with no place and no crisis kind attached.
    assert (
        one_day["Requests by ZIP code and need", "Total", "Requests"],
        two_days["Requests by ZIP code and need", "Total", "Requests"],
    ) == ("11", "12")
    month = csv_cells(logged_in, "month=2026-11")
    assert month["Requests by ZIP code and need", "64124", "Safety"] == "7", "the month as a whole"
    assert month["Crises by kind", "Abuse", "Crises"] == "7"


def test_four_weeks_against_five_weeks_give_no_zip_either(logged_in, rt, people, safety_in_64124):
    with rt.db.transaction() as s:  # one more, in the fifth week
        s.add(
            Referral(
                resident_id=people[8],
                category="safety",
                zip_code="64124",
                reason="crisis:abuse",
                urgent=True,
                created_at=kc(1, 9, month=12),
            )
        )
    four = csv_cells(logged_in, "since=2026-11-02&until=2026-11-29")
    five = csv_cells(logged_in, "since=2026-11-02&until=2026-12-06")
    assert fine_cells(four) == fine_cells(five) == {}
    assert four["Crises by kind", "Total", "Crises"] == "7" and five["Crises by kind", "Total", "Crises"] == "8"


def test_a_month_still_running_is_not_detailed_until_it_ends(logged_in, rt, clock, people):
    with rt.db.transaction() as s:
        s.add_all(
            Referral(
                resident_id=people[p], category="food", zip_code="64124", reason="resources", created_at=kc(2, month=12)
            )
            for p in range(1, 7)
        )
    clock.set(kc(15, month=12))
    assert Staff(logged_in).login("lead@example.org").status_code == 302  # a new shift
    for query in ("month=2026-12", "since=2026-12-01&until=2026-12-31"):  # read on the 15th, then the 16th…
        assert fine_cells(csv_cells(logged_in, query)) == {}
    clock.set(kc(1, 0, 5, month=12) + timedelta(days=31))  # Jan 1, just after midnight in Kansas City
    assert Staff(logged_in).login("lead@example.org").status_code == 302  # a new shift
    assert csv_cells(logged_in, "month=2026-12")["Requests by ZIP code and need", "64124", "Food"] == "6"


def test_only_whole_months_are_detailed(rt):
    now = kc(1, month=12)
    assert parse_period(None, None, now, KC, "2026-11").detailed
    assert parse_period("2026-11-01", "2026-11-30", now, KC).detailed
    assert parse_period("2026-10-01", "2026-10-31", now, KC).detailed
    for since, until in [
        ("2026-11-01", "2026-11-29"),
        ("2026-11-02", "2026-11-30"),
        ("2026-10-01", "2026-11-30"),
        ("2026-11-10", "2026-11-10"),
        ("2026-12-01", "2026-12-31"),
    ]:
        assert not parse_period(since, until, now, KC).detailed, (since, until)
    with pytest.raises(PeriodError, match="not a month"):
        parse_period(None, None, now, KC, "2026-13")


def test_the_page_explains_why_it_shows_only_totals(logged_in, rt, safety_in_64124):
    html = logged_in.get("/reports?since=2026-11-10&until=2026-11-11").get_data(as_text=True)
    assert html.count('class="note withheld"') == 2 and "64124" not in html
    month = logged_in.get("/reports?month=2026-11").get_data(as_text=True)
    assert "withheld" not in month and '<th scope="row">64124</th>' in month
    assert '<option value="2026-11" selected>November 2026</option>' in month
    assert logged_in.get("/reports?month=soon").status_code == 400


def test_the_cli_takes_a_month_or_dates_not_both(env, rt, safety_in_64124):
    runner = CliRunner()
    both = runner.invoke(main, ["report", "--month", "2026-11", "--since", "2026-11-01"], env=env)
    assert both.exit_code == 2 and "not both" in both.output
    days = runner.invoke(main, ["report", "--since", "2026-11-10", "--until", "2026-11-11"], env=env).output
    assert "64124" not in days and "calendar month" in days
    assert "64124" in runner.invoke(main, ["report", "--month", "2026-11"], env=env).output


# -- reports people can trust (issue 12) ---------------------------------------------------------------------

NOT_COUNTS = ("Rate", "Share of closed")  # columns of rates
NOT_COUNT_ROWS = ("Median hours", "90th percentile hours")


def cells_that_are_not_counts(report) -> list[str]:
    out = []
    for section in report.sections:
        for row in section.rows:
            for column, value in zip(section.header[1:], row[1:], strict=True):
                if column in NOT_COUNTS or row[0] in NOT_COUNT_ROWS:
                    out.append(value)
    return out


@pytest.mark.parametrize("who", ["dataset", "people"])
def test_less_than_five_only_ever_counts_people(rt, who, request):
    request.getfixturevalue(who)
    for report in (report_of(rt), report_of(rt, month="2026-11"), report_of(rt, "2026-10-01", "2026-10-31")):
        values = cells_that_are_not_counts(report)
        assert values and SMALL not in values, values
        assert all(v in (NOT_ENOUGH, NO_RATE, HIDDEN) or re.fullmatch(r"\d+%|[\d.]+ \(n = \d+\)", v) for v in values)


def test_medians_and_rates_from_fewer_than_five_people_are_not_enough_data(rt, people):
    with rt.db.transaction() as s:
        s.add_all(
            Referral(
                resident_id=people[p],
                category="food",
                reason="resources",
                created_at=kc(10),
                status="closed",
                outcome="got_help",
                contacted_at=kc(10, 10),
            )
            for p in (1, 2, 3, 4)
        )
    report = report_of(rt)
    assert table(report, "time_to_first_contact")["Median hours"] == [NOT_ENOUGH]
    assert table(report, "referral_outcomes")["Got help"] == [SMALL, NOT_ENOUGH]
    assert table(report, "referral_outcomes")["Could not get help"] == ["0", NOT_ENOUGH], "not '<5' for nobody"


def test_crises_are_counted_by_kind_not_as_other(rt, people):
    with rt.db.transaction() as s:
        s.add_all(
            Referral(resident_id=people[p], category=None, reason=f"crisis:{kind}", zip_code="64124", created_at=kc(10))
            for p, kind in [(p, "violence") for p in range(1, 6)] + [(p, "self_harm") for p in range(6, 11)]
        )
    week = report_of(rt)
    assert header(week, "requests_by_need_and_week")[-2:] == ["Crisis", "Total"]
    assert "Other" not in header(week, "requests_by_need_and_week")
    assert table(week, "requests_by_need_and_week")["Total"][-2:] == ["10", "10"]
    kinds = table(report_of(rt, month="2026-11"), "crises_by_kind")
    assert kinds["Violence"] == kinds["Self-harm or suicide"] == ["5"]


def test_every_report_page_links_every_other(logged_in, dataset):
    for path in ("/reports?month=2026-11", "/reports/map?month=2026-11"):
        html = logged_in.get(path).get_data(as_text=True)
        nav = html[html.index('<nav class="reports-nav"') : html.index("</nav>")]
        for link in ('href="/reports?month=2026-11"', 'href="/reports/map?month=2026-11"', "/reports.csv?", "#stale"):
            assert link in nav, (path, link)
        assert nav.count('aria-current="page"') == 1


def test_the_map_draws_circles_at_zip_centroids_and_small_cells_without_a_number(logged_in, dataset):
    resp = logged_in.get("/reports/map?month=2026-11")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    svg = html[html.index('<svg xmlns="http://www.w3.org/2000/svg" class="map"') : html.index("</svg>")]
    assert svg.count("<circle") == 3
    desc = re.search(r"<desc[^>]*>(.*?)</desc>", svg).group(1)
    assert desc == "64123: fewer than 5; 64124: 27; 64125: fewer than 5"
    assert "&lt;5" not in svg and 'stroke-dasharray="3 2"' in svg
    rows = dict(re.findall(r'<tr><th scope="row">(\d{5})</th><td>([^<]*)</td></tr>', html))
    assert rows == {"64123": "fewer than 5", "64124": "27", "64125": "fewer than 5"}, "the table beside it"
    assert "src=" not in html and "https://" not in html, "drawn offline"


def test_the_map_is_for_closed_months_only(logged_in, dataset):
    html = logged_in.get(f"/reports/map?since={SINCE}&until={UNTIL}").get_data(as_text=True)
    assert "<circle" not in html and "one whole calendar month that has ended" in html
