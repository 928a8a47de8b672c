"""Program reports: what people asked for, where, and how often it was met.

Every number counts what happened inside a date range: days in PROGRAM_TIMEZONE, both ends
included. A referral belongs to the range it was opened in; its outcome and first-contact time
are whatever they are now, so one cohort of referrals is followed to its end.

A *request* is one resident asking about one need on one day: a referral the bot opened, or a
need it could not meet (no place to send them, or they said no thanks). Asking about the same
need twice in a day counts once, so "no place found, then handed to a person" is one request.

Every count here is about people, so every cell, total and rate goes through small-cell
suppression (see `suppress`) before anyone sees it: the page, the CSV and the CLI all print the
strings this module makes and nothing else.

Suppression alone does not survive differencing: two ranges a day apart, each with "<5" in a
cell, can show 6 and 7 in a bigger cell beside it, and the difference is one person's need on one
day. So a table that breaks counts down finely enough to single out a few people (by ZIP code, by
need within a ZIP code, by crisis kind; later a map, a campaign, listening answers) is built only
for a whole calendar month that has ended (`Period.detailed`), and calendar months never overlap.
For any other range such a table shows its total only, with `DETAIL_NOTE` saying why. Every such
table goes through `detailed_only`, the one place the rule is kept.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from calendar import monthrange
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.casework.charts import Bar
from bot.conversation.crisis import CrisisKind
from bot.directory.resources import Directory
from bot.storage.models import AuditEvent, FollowUp, Message, Referral, Resident
from bot.storage.statuses import FollowUpStatus, Outcome, ReferralStatus

MIN_PEOPLE = 5
SMALL = "<5"  # fewer than 5 people: hidden (only ever a count of people)
HIDDEN = "*"  # hidden too, so that a "<5" cannot be worked out from a total (or from a rate) by subtraction
NOT_ENOUGH = "not enough data"  # a median, percentile or rate from fewer than 5 people
NO_RATE = "—"  # a rate out of nobody (0 of 0)
DEFAULT_DAYS = 90
MAX_DAYS = 3 * 366  # a longer range is a mistake, and its week-by-week page would be enormous
# Follow-ups that left (logged: no Twilio account, as in a trial run).
SENT = (FollowUpStatus.SENT, FollowUpStatus.LOGGED)

NO_NEED = "Other"  # asked for a person before naming a need
CRISIS_NEED = "crisis"  # a crisis before naming a need: its own column (its kinds in "Crises by kind")
OUTCOMES: dict[str, str] = {
    Outcome.GOT_HELP: "Got help",
    Outcome.COULD_NOT_GET_HELP: "Could not get help",
    Outcome.NO_LONGER_NEEDED: "No longer needed",
    Outcome.COULD_NOT_REACH: "Could not reach them",
    Outcome.REFERRED_ELSEWHERE: "Sent to another program",
}
UNMET = {
    "no_resource": "No place to send them",
    "declined": "Said no thanks",
    Outcome.COULD_NOT_REACH: "Could not reach them",
}
CRISES: dict[str, str] = {
    CrisisKind.VIOLENCE: "Violence",
    CrisisKind.ABUSE: "Abuse",
    CrisisKind.SELF_HARM: "Self-harm or suicide",
    CrisisKind.OVERDOSE: "Overdose",
}
LEGEND = (
    f"{SMALL} means fewer than 5 people, hidden to protect privacy. {HIDDEN} means a number "
    f"hidden so that a {SMALL} cannot be worked out from it or from a total. Medians, percentiles and "
    f"rates say {NOT_ENOUGH!r} when fewer than 5 people are behind them; {NO_RATE} is a rate out of nobody."
)
DETAIL_NOTE = (
    "Only the total for these dates. Counts by ZIP code and by crisis kind are shown for one "
    "whole calendar month that has ended (pick a month above), never for dates you choose: "
    "comparing two ranges a day apart would show one person's need by subtraction."
)


# -- the date range ------------------------------------------------------------------------


class PeriodError(ValueError):
    """A date in the range is wrong; `field` is "since" or "until"."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Period:
    since: date
    until: date
    tz: ZoneInfo
    detailed: bool = False  # a whole calendar month that has ended: the only range fine tables come for

    @property
    def start(self) -> datetime:
        """The first moment of `since`, in UTC (stored times are UTC)."""
        return datetime.combine(self.since, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first moment after `until`, in UTC: ranges are half-open in queries."""
        return datetime.combine(self.until + timedelta(days=1), time(), self.tz).astimezone(UTC)

    def day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def week(self, day: date) -> date:
        """The Monday that starts the week of `day`; the first week starts at `since`."""
        return max(day - timedelta(days=day.weekday()), self.since)

    def weeks(self) -> list[date]:
        first = self.since - timedelta(days=self.since.weekday())
        count = (self.until - first).days // 7 + 1
        return [max(first + timedelta(weeks=i), self.since) for i in range(count)]


def parse_period(since: str | None, until: str | None, now: datetime, tz: ZoneInfo, month: str | None = None) -> Period:
    """Dates as YYYY-MM-DD, or a month as YYYY-MM; by default the last 90 days up to today, today included."""
    today = now.astimezone(tz).date()
    if month:
        first = _month(month)
        last = first.replace(day=monthrange(first.year, first.month)[1])
    else:
        last = _date("until", until) or today
        first = _date("since", since) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodError("since", f"the first day ({first}) is after the last day ({last})")
    if (last - first).days >= MAX_DAYS:
        raise PeriodError("since", "a report covers at most 3 years")
    return Period(first, last, tz, detailed=is_closed_month(first, last, today))


def is_closed_month(first: date, last: date, today: date) -> bool:
    """One whole calendar month, over before today: its counts no longer grow day by day."""
    return first.day == 1 and last == first.replace(day=monthrange(first.year, first.month)[1]) and last < today


def _month(raw: str) -> date:
    try:
        return date.fromisoformat(raw.strip() + "-01")
    except ValueError:
        raise PeriodError("month", f"{raw.strip()[:20]!r} is not a month like 2026-09") from None


def _date(name: str, raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise PeriodError(name, f"{raw.strip()[:20]!r} is not a date like 2026-09-01") from None


# -- counting people and hiding small numbers ----------------------------------------------


@dataclass
class Cell:
    """A count of rows and of the distinct people behind them; `mark` when it must not be shown."""

    n: int = 0
    people: set[Hashable] = field(default_factory=set)
    mark: str | None = None

    def add(self, person: Hashable) -> None:
        self.n += 1
        self.people.add(person)

    @property
    def small(self) -> bool:
        # Zero is shown: it names nobody.
        return 0 < len(self.people) < MIN_PEOPLE

    @property
    def shown(self) -> str:
        return self.mark or str(self.n)

    def bar(self, label: str) -> Bar:
        return Bar(label, None if self.mark else self.n, self.shown)


@dataclass
class Grid:
    """Counts by row and column, with totals; built by `tally`, which also suppresses."""

    rows: list[tuple[Any, str]]  # (key, label)
    columns: list[tuple[Any, str]]
    cells: dict[tuple[Any, Any], Cell]
    row_totals: dict[Any, Cell]  # none when there is one column (the row total would repeat it)
    column_totals: dict[Any, Cell]
    total: Cell

    @property
    def has_row_totals(self) -> bool:
        return len(self.columns) > 1

    def sums(self) -> list[list[Cell]]:
        """Every "these add up to that" relation a reader could subtract along, total last."""
        rows, cols = [k for k, _ in self.rows], [k for k, _ in self.columns]
        lines = [[self.cells[r, c] for r in rows] + [self.column_totals[c]] for c in cols]
        if self.has_row_totals:
            lines += [[self.cells[r, c] for c in cols] + [self.row_totals[r]] for r in rows]
            lines += [
                [self.row_totals[r] for r in rows] + [self.total],
                [self.column_totals[c] for c in cols] + [self.total],
            ]
        return lines


def grid_of(
    facts: Iterable[tuple[Hashable, Any, Any]], rows: Sequence[tuple[Any, str]], columns: Sequence[tuple[Any, str]]
) -> Grid:
    """Count (person, row key, column key) facts into a grid, not yet suppressed."""
    cells = {(r, c): Cell() for r, _ in rows for c, _ in columns}
    row_totals = {r: Cell() for r, _ in rows} if len(columns) > 1 else {}
    column_totals = {c: Cell() for c, _ in columns}
    total = Cell() if len(columns) > 1 else column_totals[columns[0][0]]
    for person, row, column in facts:
        cells[row, column].add(person)
        column_totals[column].add(person)
        if row_totals:
            row_totals[row].add(person)
            total.add(person)
    return Grid(list(rows), list(columns), cells, row_totals, column_totals, total)


def tally(
    facts: Iterable[tuple[Hashable, Any, Any]], rows: Sequence[tuple[Any, str]], columns: Sequence[tuple[Any, str]]
) -> Grid:
    """Count (person, row key, column key) facts into a suppressed grid."""
    grid = grid_of(facts, rows, columns)
    suppress(grid)
    return grid


def share_margins(grid: Grid, source: Grid) -> None:
    """Make `grid`'s column totals and grand total the very cells of `source`, which count the same
    facts: suppressed together, a total hidden in one table is hidden in the other too, so one table
    cannot be used to undo the other's hiding."""
    assert [k for k, _ in grid.columns] == [k for k, _ in source.columns], "the same columns"
    assert grid.total.n == source.total.n, "the same facts"
    grid.column_totals, grid.total = source.column_totals, source.total


def suppress(*grids: Grid) -> None:
    """Small-cell suppression, the rule public-health tables use, over grids published together.

    1. Primary: any cell or total that counts 1 to 4 distinct people shows "<5".
    2. Complementary: a row and its total, a column and its total, and the totals and the grand
       total each add up. When exactly one member of such a sum is hidden, the others give it
       away by subtraction, so the smallest other non-zero member is hidden too ("*"). This
       repeats until no sum, in any of the grids, has exactly one hidden member (hiding one can
       expose another; grids that share totals, see `share_margins`, are solved as one).

    Limits: "<5" itself says 1 to 4, so shown totals still bound the hidden cells. This is the
    standard complementary rule, not a full linear-programming audit of every table.
    """
    for grid in grids:
        for cell in [*grid.cells.values(), *grid.row_totals.values(), *grid.column_totals.values(), grid.total]:
            if cell.small:
                cell.mark = SMALL
    lines = [line for grid in grids for line in grid.sums()]
    while any(_protect(line) for line in lines):
        pass


def _protect(line: list[Cell]) -> bool:
    """Hide a second member of a sum that has only one hidden; True if it hid one."""
    if sum(1 for c in line if c.mark) != 1:
        return False
    # Prefer inner cells over the total when counts tie: min() keeps the first, totals come last.
    candidates = [c for c in line if not c.mark and c.n > 0]
    if not candidates:
        return False
    min(candidates, key=lambda c: c.n).mark = HIDDEN
    return True


def cell_of(facts: Iterable[Hashable]) -> Cell:
    """One count on its own (a part or a whole of a rate), with primary suppression."""
    cell = Cell()
    for person in facts:
        cell.add(person)
    if cell.small:
        cell.mark = SMALL
    return cell


def rate(part: Cell, whole: Cell) -> str:
    """A share as a whole percentage of `whole` (its numerator and denominator shown beside it):
    "—" out of nobody, "not enough data" out of fewer than 5 people, "*" when a hidden count is in it."""
    if whole.n == 0:
        return NO_RATE
    if len(whole.people) < MIN_PEOPLE:
        return NOT_ENOUGH
    if part.mark or whole.mark:
        return HIDDEN
    return f"{(200 * part.n + whole.n) // (2 * whole.n)}%"  # round half up, in integers


# -- what the database says ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    person: int | None  # None once a resident was purged; all of those count as one person
    need: str | None
    zip_code: str | None
    day: date


@dataclass(frozen=True)
class Unmet:
    person: int | None
    need: str | None
    reason: str
    day: date


def _referrals(s: Session, period: Period) -> list[Referral]:
    return list(
        s.scalars(select(Referral).where(Referral.created_at >= period.start, Referral.created_at < period.end))
    )


def _unmet_events(s: Session, period: Period) -> list[tuple[AuditEvent, str | None]]:
    """need.unmet events with the resident's ZIP (the event itself carries none)."""
    query = (
        select(AuditEvent, Resident.zip_code)
        .outerjoin(Resident, Resident.id == AuditEvent.resident_id)
        .where(AuditEvent.action == "need.unmet", AuditEvent.at >= period.start, AuditEvent.at < period.end)
    )
    return [(event, zip_code) for event, zip_code in s.execute(query)]


def need_requests(
    referrals: list[Referral], unmet: list[tuple[AuditEvent, str | None]], period: Period
) -> list[Request]:
    """One per resident, need and day; a referral comes first, so its ZIP (the one given) wins."""
    found: dict[tuple[Any, ...], Request] = {}
    for r in referrals:
        need = r.category or (CRISIS_NEED if r.reason.startswith("crisis:") else None)
        req = Request(r.resident_id, need, r.zip_code, period.day(r.created_at))
        found.setdefault((req.person, req.need, req.day), req)
    for event, zip_code in unmet:
        req = Request(event.resident_id, event.detail.get("category"), zip_code, period.day(event.at))
        found.setdefault((req.person, req.need, req.day), req)
    return list(found.values())


def unmet_needs(referrals: list[Referral], unmet: list[tuple[AuditEvent, str | None]], period: Period) -> list[Unmet]:
    """Needs not met: no place found or declined (once a day per need), or nobody reachable."""
    found = {
        Unmet(e.resident_id, e.detail.get("category"), e.detail.get("reason", ""), period.day(e.at))
        for e, _ in unmet
        if e.detail.get("reason") in UNMET
    }
    found |= {
        Unmet(r.resident_id, r.category, Outcome.COULD_NOT_REACH, period.day(r.created_at))
        for r in referrals
        if r.status == ReferralStatus.CLOSED and r.outcome == Outcome.COULD_NOT_REACH
    }
    return list(found)


def _texted_in(s: Session, period: Period) -> set[int]:
    return set(
        s.scalars(
            select(Message.resident_id)
            .distinct()
            .where(Message.direction == "in", Message.created_at >= period.start, Message.created_at < period.end)
        )
    )


def _opted_out(s: Session, period: Period) -> set[int | None]:
    return set(
        s.scalars(
            select(AuditEvent.resident_id)
            .distinct()
            .where(AuditEvent.action == "resident.opted_out", AuditEvent.at >= period.start, AuditEvent.at < period.end)
        )
    )


def _followups_sent(s: Session, period: Period) -> list[FollowUp]:
    return list(
        s.scalars(
            select(FollowUp).where(
                FollowUp.status.in_(SENT), FollowUp.sent_at >= period.start, FollowUp.sent_at < period.end
            )
        )
    )


# -- the report: sections of strings, the same for the page, the CSV and the CLI ----------


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    note: str
    header: list[str]
    rows: list[list[str]]  # first item: the row's label
    charts: list[Chart] = field(default_factory=list)
    withheld: bool = False  # a fine table shown as its total only (see `detailed_only`)


@dataclass(frozen=True)
class Place:
    """Requests from one ZIP code, for the map: `count` None when the number is hidden."""

    zip_code: str
    count: int | None
    shown: str


@dataclass(frozen=True)
class Report:
    period: Period
    sections: list[Section]
    places: list[Place] = field(default_factory=list)  # by ZIP code: a closed calendar month only


def build_report(s: Session, period: Period, needs: Sequence[str]) -> Report:
    """Every section, from one session (one snapshot of the database); `needs` are the directory's
    categories, each a row even when nobody asked (a zero says something)."""
    referrals, unmet = _referrals(s, period), _unmet_events(s, period)
    asked = need_requests(referrals, unmet, period)
    by_week = grid_of(
        ((r.person, period.week(r.day), r.need) for r in asked), _weeks(period), _needs(needs, (r.need for r in asked))
    )
    by_zip = zip_grid(asked, by_week) if period.detailed else None
    suppress(*(grid for grid in (by_week, by_zip) if grid is not None))  # together: they share the need totals
    return Report(
        period,
        [
            requests_by_week(by_week, period),
            detailed_only(
                period,
                "requests_by_zip",
                "Requests by ZIP code and need",
                "Requests",
                by_week.total,
                lambda: requests_by_zip(by_zip),
            ),
            crises_by_kind(referrals, period),
            needs_not_met(unmet_needs(referrals, unmet, period), needs),
            referral_outcomes(referrals),
            closing_the_loop(referrals, _followups_sent(s, period), _texted_in(s, period), _opted_out(s, period)),
            time_to_contact(referrals),
        ],
        places_of(by_zip),
    )


def places_of(by_zip: Grid | None) -> list[Place]:
    """The ZIP table's row totals, suppressed as in the table (none for a range that is not a closed month)."""
    if by_zip is None:
        return []
    totals = ((key, by_zip.row_totals[key]) for key, _ in by_zip.rows if key is not None)
    return [Place(key, None if cell.mark else cell.n, cell.shown) for key, cell in totals]


def detailed_only(
    period: Period, key: str, title: str, counted: str, total: Cell, build: Callable[[], Section]
) -> Section:
    """The one gate for tables fine enough to single out a few people (see the module's docstring):
    the table itself for a closed calendar month, its total alone for any other range."""
    if period.detailed:
        return build()
    return Section(key, title, DETAIL_NOTE, ["", counted], [["Total", total.shown]], withheld=True)


def _keys(fixed: dict[str, str], seen: Iterable[str | None], none_label: str) -> list[tuple[str | None, str]]:
    """The fixed keys always (a zero says something), then any other key found, then no key."""
    seen = set(seen)
    extra = sorted(k for k in seen if k is not None and k not in fixed)
    return [
        *fixed.items(),
        *((k, _label(k)) for k in extra),
        *([(None, none_label)] if None in seen else []),
    ]


def _grid_rows(grid: Grid) -> list[list[str]]:
    rows = [
        [
            label,
            *(grid.cells[r, c].shown for c, _ in grid.columns),
            *([grid.row_totals[r].shown] if grid.has_row_totals else []),
        ]
        for r, label in grid.rows
    ]
    total = [grid.column_totals[c].shown for c, _ in grid.columns]
    return rows + [["Total", *total, *([grid.total.shown] if grid.has_row_totals else [])]]


def _header(first: str, grid: Grid) -> list[str]:
    return [first, *(label for _, label in grid.columns), *(["Total"] if grid.has_row_totals else [])]


def _weeks(period: Period) -> list[tuple[date, str]]:
    return [(w, f"Week of {w.isoformat()}") for w in period.weeks()]


def _needs(needs: Sequence[str], seen: Iterable[str | None]) -> list[tuple[str | None, str]]:
    """The directory's needs as rows ("legal" reads "Legal"), then any other need found, then none."""
    return _keys({need: _label(need) for need in needs}, seen, NO_NEED)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def requests_by_week(grid: Grid, period: Period) -> Section:
    return Section(
        "requests_by_need_and_week",
        "Requests by need and week",
        "A request is one person asking about one need on one day. Crisis: a text read as immediate "
        "danger before a need was named (by kind under Crises by kind). Other: asked for a person "
        "before naming a need. Housing includes rent, utilities and shelter; Safety is safety at home.",
        _header("Week", grid),
        _grid_rows(grid),
        [
            Chart("Requests by need", [grid.column_totals[k].bar(label) for k, label in grid.columns]),
            Chart("Requests by week", [grid.row_totals[k].bar(label) for k, label in grid.rows]),
        ],
    )


def zip_grid(asked: list[Request], by_week: Grid) -> Grid:
    """Requests by ZIP code and need; its need totals are the week table's own cells."""
    rows = _keys({}, (r.zip_code or None for r in asked), "Not given")
    grid = grid_of(((r.person, r.zip_code or None, r.need) for r in asked), rows, by_week.columns)
    share_margins(grid, by_week)
    return grid


def requests_by_zip(grid: Grid | None) -> Section:
    assert grid is not None, "built for a closed month only"
    return Section(
        "requests_by_zip",
        "Requests by ZIP code and need",
        "The ZIP code the person gave for that need.",
        _header("ZIP code", grid),
        _grid_rows(grid),
        [Chart("Requests by ZIP code", [grid.row_totals[k].bar(label) for k, label in grid.rows])],
    )


def crises_by_kind(referrals: list[Referral], period: Period) -> Section:
    """Referrals the bot opened for a crisis, by what kind of danger it read in the text."""
    crises = [(r.resident_id, r.reason.partition(":")[2]) for r in referrals if r.reason.startswith("crisis:")]
    rows = _keys(CRISES, (kind for _, kind in crises), "Not known")
    grid = tally(((person, kind, "n") for person, kind in crises), rows, [("n", "Crises")])

    def table() -> Section:
        return Section(
            "crises_by_kind",
            "Crises by kind",
            "Texts the bot read as immediate danger and answered with 911, 988 or the hotline, "
            "by kind. Violence: someone threatening or hurting them; Abuse: by someone at home.",
            ["Kind", "Crises"],
            _grid_rows(grid),
            [Chart("Crises by kind", [grid.cells[k, "n"].bar(label) for k, label in rows])],
        )

    return detailed_only(period, "crises_by_kind", "Crises by kind", "Crises", grid.total, table)


def needs_not_met(unmet: list[Unmet], needs: Sequence[str]) -> Section:
    reasons = list(UNMET.items())
    grid = tally(((u.person, u.need, u.reason) for u in unmet), _needs(needs, (u.need for u in unmet)), reasons)
    return Section(
        "needs_not_met",
        "Needs not met",
        "No place to send them: the directory had nothing for that need. Said no thanks: they "
        "turned down a person's help. Could not reach them: a referral opened in these dates was "
        "closed because nobody could reach the person.",
        _header("Need", grid),
        _grid_rows(grid),
        [Chart("Needs not met, by reason", [grid.column_totals[k].bar(label) for k, label in reasons])],
    )


def referral_outcomes(referrals: list[Referral]) -> Section:
    closed = [r for r in referrals if r.status == ReferralStatus.CLOSED]
    outcomes = _keys(OUTCOMES, (r.outcome for r in closed), "No outcome recorded")
    grid = tally(((r.resident_id, r.outcome, "n") for r in closed), outcomes, [("n", "Referrals")])
    total = grid.column_totals["n"]
    cells = [(label, grid.cells[k, "n"]) for k, label in outcomes]
    return Section(
        "referral_outcomes",
        "How closed referrals ended",
        "Referrals opened in these dates and closed since, by how they ended.",
        ["Outcome", "Referrals", "Share of closed"],
        [[label, cell.shown, rate(cell, total)] for label, cell in cells]
        + [["Total", total.shown, rate(total, total)]],
        [Chart("How closed referrals ended", [cell.bar(label) for label, cell in cells])],
    )


def closing_the_loop(
    referrals: list[Referral], followups: list[FollowUp], texted: set[int], opted_out: set[int | None]
) -> Section:
    measures = [
        (
            "Referrals closed, of referrals opened",
            cell_of(r.resident_id for r in referrals if r.status == ReferralStatus.CLOSED),
            cell_of(r.resident_id for r in referrals),
        ),
        (
            "Check-ins answered, of check-in texts sent",
            cell_of(f.resident_id for f in followups if f.answered_at is not None),
            cell_of(f.resident_id for f in followups),
        ),
        ("People who opted out, of people who texted in", cell_of(opted_out & texted), cell_of(texted)),
    ]
    return Section(
        "closing_the_loop",
        "Closing the loop",
        "Opted out: texted STOP in these dates (some may have come back since).",
        ["Measure", "Count", "Out of", "Rate"],
        [[label, part.shown, whole.shown, rate(part, whole)] for label, part, whole in measures],
    )


def time_to_contact(referrals: list[Referral]) -> Section:
    contacted = [r for r in referrals if r.contacted_at is not None]
    count = cell_of(r.resident_id for r in contacted)
    median, p90 = _median_p90(
        [(r.contacted_at - r.created_at).total_seconds() / 3600 for r in contacted if r.contacted_at], len(count.people)
    )
    return Section(
        "time_to_first_contact",
        "Time from hand-off to first contact",
        "Hours from the bot opening a referral to a caseworker's first contact, for the referrals a "
        "caseworker has contacted. 90th percentile: 9 in 10 were reached within this time.",
        ["Measure", "Value"],
        [
            ["Referrals contacted", count.shown],
            ["Median hours", _with_n(median, count)],
            ["90th percentile hours", _with_n(p90, count)],
        ],
    )


def _with_n(value: str, count: Cell) -> str:
    return value if value == NOT_ENOUGH else f"{value} (n = {count.shown})"


def _median_p90(values: list[float], people: int) -> tuple[str, str]:
    """Both to a tenth, or "not enough data" when fewer than 5 people are behind them; computed here,
    not in SQL, so SQLite and PostgreSQL agree. The percentile interpolates like PERCENTILE.INC."""
    if people < MIN_PEOPLE:
        return NOT_ENOUGH, NOT_ENOUGH
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1]
    return f"{statistics.median(values):.1f}", f"{p90:.1f}"


# -- resources to verify again (directory entries, not people: nothing to suppress) -----------


@dataclass(frozen=True)
class StaleService:
    id: str
    name: str
    organization: str
    verified: date | None  # None: never verified
    days_old: int | None


def stale_services(directory: Directory, today: date, max_age_days: int) -> list[StaleService]:
    """Services last verified more than `max_age_days` (RESOURCE_MAX_AGE_DAYS) before `today`, oldest first."""
    stale = [
        StaleService(
            s.id, s.name, s.organization.name, s.assured_date, (today - s.assured_date).days if s.assured_date else None
        )
        for s in directory.stale(today, max_age_days)
    ]
    return sorted(stale, key=lambda s: (s.days_old is not None, -(s.days_old or 0), s.name))


# -- output formats ---------------------------------------------------------------------------


def to_csv(report: Report) -> str:
    """Long format, one number a line: section, row, column, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "row", "column", "value"])
    writer.writerow(["Date range", "From", "date", report.period.since.isoformat()])
    writer.writerow(["Date range", "To", "date", report.period.until.isoformat()])
    for section in report.sections:
        for row in section.rows:
            writer.writerows(
                [_safe(section.title), _safe(row[0]), _safe(column), _safe(value)]
                for column, value in zip(section.header[1:], row[1:], strict=False)
            )
        if section.withheld:
            writer.writerow([_safe(section.title), "Why only the total", "note", section.note])
    return out.getvalue()


def _safe(value: str) -> str:
    """Keep a spreadsheet from running a label as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_json(report: Report) -> str:
    return (
        json.dumps(
            {
                "since": report.period.since.isoformat(),
                "until": report.period.until.isoformat(),
                "legend": LEGEND,
                "detailed": report.period.detailed,
                "sections": [
                    {
                        "key": s.key,
                        "title": s.title,
                        "note": s.note,
                        "header": s.header,
                        "rows": s.rows,
                        "withheld": s.withheld,
                    }
                    for s in report.sections
                ],
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n"
    )


def to_text(report: Report) -> str:
    lines = [f"peaceline report, {report.period.since} to {report.period.until}", LEGEND]
    for section in report.sections:
        table = [section.header, *section.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(section.header))]
        lines += ["", section.title, "-" * len(section.title)]
        lines += [_text_row(row, widths) for row in table]
        if section.withheld:
            lines.append(section.note)
    return "\n".join(lines) + "\n"


def _text_row(row: list[str], widths: list[int]) -> str:
    """Labels to the left, numbers to the right, so columns of numbers line up."""
    cells = [row[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=False))]
    return "  ".join(cells).rstrip()
