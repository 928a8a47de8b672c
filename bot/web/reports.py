"""/reports and /reports.csv: the program report for leads and the task force (staff only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from flask import Blueprint, Response, render_template, request
from flask_login import login_required

from bot.casework.charts import Dot, bar_chart, zip_map
from bot.casework.reports import (
    HIDDEN,
    LEGEND,
    SMALL,
    Period,
    PeriodError,
    Report,
    build_report,
    parse_period,
    stale_services,
    to_csv,
)
from bot.directory.geo import zip_centroid
from bot.web.auth import staff_headers
from bot.web.context import runtime

bp = Blueprint(
    "reports", __name__, template_folder="templates", static_folder="static/reports", static_url_path="/reports/static"
)
bp.after_request(staff_headers)  # the staff pages' CSP (no inline script or style), no-store


def _period(since: str | None, until: str | None, month: str | None = None) -> Period:
    rt = runtime()
    return parse_period(since, until, rt.clock.now(), rt.settings.program_timezone, month)


def _asked() -> Period:
    return _period(request.args.get("since"), request.args.get("until"), request.args.get("month"))


def _closed_months(today: date, count: int = 12) -> list[date]:
    """The first days of the last `count` calendar months that have ended, newest first."""
    first = today.replace(day=1)
    out = []
    for _ in range(count):
        first = (first - timedelta(days=1)).replace(day=1)
        out.append(first)
    return out


def _build(period: Period) -> Report:
    with runtime().db.sessions() as s:
        return build_report(s, period, list(runtime().directory.categories))


def _render(template: str, parts: Callable[[Report], dict[str, object]]) -> tuple[str, int]:
    """A report page for the dates asked (the last 90 days, and a 400, when they are wrong)."""
    try:
        period, error, status = _asked(), None, 200
    except PeriodError as exc:
        period, error, status = _period(None, None), str(exc), 400
    report = _build(period)
    html = render_template(
        template, report=report, error=error, legend=LEGEND, months=_closed_months(_today()), **parts(report)
    )
    return html, status


def _today() -> date:
    rt = runtime()
    return rt.clock.now().astimezone(rt.settings.program_timezone).date()


def _report_parts(_report: Report) -> dict[str, object]:
    rt = runtime()
    max_age = rt.settings.resource_max_age_days
    return {"bar_chart": bar_chart, "stale": stale_services(rt.directory, _today(), max_age), "max_age": max_age}


@bp.get("/reports")
@login_required
def page() -> tuple[str, int]:
    return _render("reports/report.html", _report_parts)


# A hidden count on the map and beside it: words, never a number.
HIDDEN_WORDS = {SMALL: "fewer than 5", HIDDEN: "hidden"}


def _map_parts(report: Report) -> dict[str, object]:
    dots, off_map = [], []
    for place in report.places:
        if (centroid := zip_centroid(place.zip_code)) is None:
            off_map.append(place.zip_code)
            continue
        dots.append(Dot(place.zip_code, *centroid, place.count, HIDDEN_WORDS.get(place.shown, place.shown)))
    return {
        "map_svg": zip_map("requests-map", "Requests by ZIP code", dots) if dots else "",
        "off_map": off_map,
        "hidden_words": HIDDEN_WORDS,
    }


@bp.get("/reports/map")
@login_required
def map_page() -> tuple[str, int]:
    return _render("reports/map.html", _map_parts)


@bp.get("/reports.csv")
@login_required
def csv_download() -> Response:
    try:
        period = _asked()
    except PeriodError as exc:
        return Response(f"{exc.field}: {exc}\n", 400, mimetype="text/plain")
    name = f"peaceline-report-{period.since}-to-{period.until}.csv"
    return Response(
        to_csv(_build(period)), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
