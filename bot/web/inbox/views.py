"""The caseworker inbox: the queue, a referral's whole thread, and what can be done to it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from bot.casework import cases
from bot.casework.cases import CaseError
from bot.messaging.phones import mask
from bot.messaging.triage import Tier
from bot.runtime import runtime
from bot.web.auth import staff_headers, staff_only
from bot.web.inbox import admin, campaigns

bp = Blueprint("inbox", __name__, url_prefix="/inbox", template_folder="templates", static_folder="static")
bp.register_blueprint(admin.bp)
bp.register_blueprint(campaigns.bp)
bp.after_request(staff_headers)

POLL_SECONDS = 10  # app.config["INBOX_POLL_SECONDS"] overrides (the browser test polls faster)
SHOWS = ("open", "mine", "closed")
PAGE_NUMBER = re.compile(r"[0-9]{1,6}")
STATUS_LABELS = {"new": "New", "claimed": "Claimed", "contacted": "Contacted", "closed": "Closed"}
REASONS = {
    "asked_person": "Asked for a person",
    "two_misses": "The bot did not understand them twice",
    "resources": "Got a list of places",
    "more_help": "Asked for more help",
    "canvass": "Met at the door (canvass)",
}
# What happened to a text, in a caseworker's words.
DELIVERY = {
    "queued": "sending",
    "accepted": "sending",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "logged": "logged only (no Twilio account)",
    "failed": "not sent",
    "undelivered": "not delivered",
    "unknown": "may not have gone out",
    "skipped_opted_out": "not sent: opted out",
    "loop_guard": "ignored: too many texts at once",
    "held_contact_preference": (
        "not sent: they asked us not to text first. You can answer within 24 hours of their own last text"
    ),
}


@bp.before_request
def require_login() -> Response | tuple[str, int] | None:
    """Every inbox URL needs a logged-in caseworker, so a new route cannot forget it."""
    if request.endpoint == "inbox.static":  # CSS and JS hold nothing private; the login page uses them
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    return staff_only()


@bp.errorhandler(CaseError)
def case_error(exc: CaseError) -> Response | tuple[str, int]:
    if request.method == "GET":  # only a missing referral fails to show
        return render_template("inbox/error.html", message=str(exc)), 404
    flash(str(exc), "error")
    referral_id = (request.view_args or {}).get("referral_id")
    return redirect(url_for("inbox.thread", referral_id=referral_id) if referral_id else url_for("inbox.queue"))


# -- template helpers -------------------------------------------------------------------------------


@bp.app_template_filter("age")
def age(at: datetime) -> str:
    """'just now', '12 min', '3 h', '2 d'."""
    minutes = int((runtime().clock.now() - at).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 24 * 60 else f"{minutes // (24 * 60)} d"


@bp.app_template_filter("local")
def local(at: datetime | None) -> str:
    """'Tue 1 Dec, 10:05' in the program's time zone."""
    if at is None:
        return ""
    value = at.astimezone(runtime().settings.program_timezone)
    return f"{value:%a} {value.day} {value:%b}, {value:%H:%M}"


@bp.app_template_filter("category_label")
def category_label(key: str | None) -> str:
    category = runtime().directory.categories.get(key) if key else None
    return category.name["en"] if category else "No category yet"


@bp.app_template_filter("reason_label")
def reason_label(reason: str) -> str:
    kind, _, detail = reason.partition(":")
    if kind == "crisis":
        return f"Crisis ({detail.replace('_', ' ')})"
    return REASONS.get(reason, reason)


bp.add_app_template_filter(mask, "mask")
bp.add_app_template_filter(lambda status: STATUS_LABELS.get(status, status), "status_label")
bp.add_app_template_filter(lambda status: DELIVERY.get(status, status), "delivery")
bp.add_app_template_global(Tier, "Tier")


def _show() -> cases.Show:
    show = request.args.get("show", "open")
    return show if show in SHOWS else "open"  # type: ignore[return-value]


def _me() -> int:
    return current_user.id


def _back(referral_id: int) -> Response:
    return redirect(url_for("inbox.thread", referral_id=referral_id))


# -- the queue ---------------------------------------------------------------------------------------


def _page() -> int | None:
    """?page=N, from 1; None when it is not a page number."""
    raw = request.args.get("page", "1")
    return int(raw) if PAGE_NUMBER.fullmatch(raw) else None


BAD_PAGE = "The page must be a number, like ?page=2."


@bp.get("/", strict_slashes=False)
def queue() -> str | tuple[str, int]:
    show, page = _show(), _page()
    if page is None:
        return render_template("inbox/error.html", message=BAD_PAGE), 400
    return render_template(
        "inbox/queue.html",
        show=show,
        q=cases.queue(runtime(), show, _me(), page),
        poll_seconds=current_app.config.get("INBOX_POLL_SECONDS", POLL_SECONDS),
    )


@bp.get("/queue.json")
def queue_json() -> dict | tuple[dict, int]:
    """The queue's rows and totals, rendered on the server, for the page's poll."""
    show, page = _show(), _page()
    if page is None:
        return {"error": BAD_PAGE}, 400
    q = cases.queue(runtime(), show, _me(), page)
    return {
        "html": render_template("inbox/_queue.html", referrals=q.referrals),
        "summary": render_template("inbox/_summary.html", q=q, show=show),
        "count": q.total,
        "unread": q.unread,
    }


# -- one referral ------------------------------------------------------------------------------------------


@bp.get("/referrals/<int:referral_id>")
def thread(referral_id: int) -> str:
    rt = runtime()
    view = cases.open_thread(rt, referral_id, _me())
    lang = view.referral.resident.language or "en"
    templates = [(key, rt.engine.text(key, lang)) for key in cases.followup_templates(rt)]
    tomorrow = (rt.clock.now().astimezone(rt.settings.program_timezone) + timedelta(days=1)).date()
    return render_template(
        "inbox/thread.html",
        view=view,
        r=view.referral,
        outcomes=cases.OUTCOMES,
        templates=templates,
        default_day=tomorrow.isoformat(),
        timezone=str(rt.settings.program_timezone),
        max_reply=cases.MAX_REPLY,
    )


@bp.post("/referrals/<int:referral_id>/claim")
def claim(referral_id: int) -> Response:
    cases.claim(runtime(), referral_id, _me())
    flash(f"Referral #{referral_id} is yours.", "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/reply")
def reply(referral_id: int) -> Response:
    msg = cases.reply(runtime(), referral_id, _me(), request.form.get("body", ""))
    if msg.status in cases.NOT_SENT:
        flash(f"Your text was {DELIVERY[msg.status]}.", "error")
    elif msg.status in cases.UNCERTAIN:
        flash(
            "Your text may not have gone out (Twilio did not answer). Check the thread before sending again.", "error"
        )
    else:
        flash("Sent.", "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/notes")
def add_note(referral_id: int) -> Response:
    cases.add_note(runtime(), referral_id, _me(), request.form.get("body", ""))
    flash("Note saved.", "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/close")
def close(referral_id: int) -> Response:
    cancelled = cases.close(runtime(), referral_id, _me(), request.form.get("outcome", ""))
    flash(f"Referral #{referral_id} closed." + (f" {cancelled} check-in(s) cancelled." if cancelled else ""), "ok")
    return redirect(url_for("inbox.queue"))


@bp.post("/referrals/<int:referral_id>/reopen")
def reopen(referral_id: int) -> Response:
    cases.reopen(runtime(), referral_id, _me())
    flash(f"Referral #{referral_id} is open again.", "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/followups")
def schedule_followup(referral_id: int) -> Response:
    form = request.form
    row = cases.schedule_followup(
        runtime(), referral_id, _me(), form.get("template", ""), form.get("day", ""), form.get("time", "")
    )
    flash(f"Check-in set for {local(row.due_at)}.", "ok")
    return _back(referral_id)


@bp.post("/followups/<int:followup_id>/cancel")
def cancel_followup(followup_id: int) -> Response:
    referral_id = cases.cancel_followup(runtime(), followup_id, _me())
    flash("Check-in cancelled.", "ok")
    return _back(referral_id)
