"""/reports and /reports.csv: the program report for leads and the task force (staff only)."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, Response, render_template, request
from flask_login import login_required

from bot.casework.charts import bar_chart
from bot.casework.reports import LEGEND, Period, PeriodError, Report, build_report, parse_period, stale_services, to_csv
from bot.runtime import runtime
from bot.web.auth import staff_headers, staff_only

bp = Blueprint(
    "reports", __name__, template_folder="templates", static_folder="static/reports", static_url_path="/reports/static"
)
bp.after_request(staff_headers)  # the staff pages' CSP (no inline script or style), no-store
bp.before_request(staff_only)


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
        return build_report(s, period)


@bp.get("/reports")
@login_required
def page() -> tuple[str, int]:
    try:
        period, error, status = _asked(), None, 200
    except PeriodError as exc:
        period, error, status = _period(None, None), str(exc), 400
    rt = runtime()
    today = rt.clock.now().astimezone(rt.settings.program_timezone).date()
    max_age = rt.settings.resource_max_age_days
    html = render_template(
        "reports/report.html",
        report=_build(period),
        error=error,
        legend=LEGEND,
        bar_chart=bar_chart,
        stale=stale_services(rt.directory, today, max_age),
        max_age=max_age,
        months=_closed_months(today),
    )
    return html, status


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
