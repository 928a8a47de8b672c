"""The caseworker inbox: the queue, a referral's whole thread, and what can be done to it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response  # what redirect() returns; Flask's Response is one

from bot.casework import cases
from bot.casework.cases import CaseError
from bot.conversation.segments import counting_rules
from bot.messaging.phones import mask
from bot.messaging.triage import Tier
from bot.web.auth import staff_headers, unauthorized
from bot.web.context import runtime
from bot.web.inbox import admin

bp = Blueprint("inbox", __name__, url_prefix="/inbox", template_folder="templates", static_folder="static")
bp.register_blueprint(admin.bp)
bp.after_request(staff_headers)

# Staff-facing words: templates/inbox/words.yaml (templates ship in the wheel).
WORDS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "templates" / "inbox" / "words.yaml").read_text(encoding="utf-8")
)
STATUS_LABELS: dict[str, str] = WORDS["status"]
DELIVERY: dict[str, str] = WORDS["delivery"]
LANGUAGES: dict[str, str] = WORDS["languages"]
DONE: dict[str, str] = WORDS["done"]
BAD_PAGE: str = WORDS["bad_page"]
POLL_SECONDS = 10  # app.config["INBOX_POLL_SECONDS"] overrides (the browser test polls faster)
SHOWS = ("open", "mine", "closed")
PAGE_NUMBER = re.compile(r"[0-9]{1,6}")


@bp.before_request
def require_login() -> Response | tuple[dict, int] | None:
    """Every inbox URL needs a logged-in caseworker, so a new route cannot forget it."""
    if request.endpoint == "inbox.static":  # CSS and JS hold nothing private; the login page uses them
        return None
    if not current_user.is_authenticated:
        return unauthorized()
    return None


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
    rt = runtime()
    category = rt.directory.categories.get(key) if key else None
    return category.name.get(rt.engine.languages[0], key or "") if category else "No category yet"


@bp.app_template_filter("reason_label")
def reason_label(reason: str) -> str:
    kind, _, detail = reason.partition(":")
    reasons = WORDS["reasons"]
    if kind == "crisis":
        return reasons["crisis"].format(kind=detail.replace("_", " "))
    return reasons.get(reason, reason)


bp.add_app_template_filter(mask, "mask")
bp.add_app_template_filter(lambda status: STATUS_LABELS.get(status, status), "status_label")
bp.add_app_template_filter(lambda status: DELIVERY.get(status, status), "delivery")
bp.add_app_template_global(Tier, "Tier")
bp.app_context_processor(lambda: {"languages": LANGUAGES})


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


def _filters() -> cases.Filters:
    """?urgent=1&need=food&lang=es; anything unknown is ignored (the whole tab shows)."""
    args, rt = request.args, runtime()
    need = args.get("need") if args.get("need") in rt.directory.categories else None
    lang = args.get("lang") if args.get("lang") in LANGUAGES else None
    return cases.Filters(urgent=args.get("urgent") == "1", need=need, language=lang)


def _filter_args(filters: cases.Filters) -> dict[str, str]:
    """The filters as query arguments, for the poll and the pager."""
    pairs = {"urgent": "1" if filters.urgent else "", "need": filters.need or "", "lang": filters.language or ""}
    return {k: v for k, v in pairs.items() if v}


@bp.get("/", strict_slashes=False)
def queue() -> str | tuple[str, int]:
    show, page, filters = _show(), _page(), _filters()
    if page is None:
        return render_template("inbox/error.html", message=BAD_PAGE), 400
    return render_template(
        "inbox/queue.html",
        show=show,
        q=cases.queue(runtime(), show, _me(), page, filters),
        filters=filters,
        filter_args=_filter_args(filters),
        needs=runtime().directory.categories,
        poll_seconds=current_app.config.get("INBOX_POLL_SECONDS", POLL_SECONDS),
    )


@bp.get("/queue.json")
def queue_json() -> dict | tuple[dict, int]:
    """The queue's rows and totals, rendered on the server, for the page's poll."""
    show, page, filters = _show(), _page(), _filters()
    if page is None:
        return {"error": BAD_PAGE}, 400
    q = cases.queue(runtime(), show, _me(), page, filters)
    return {
        "html": render_template("inbox/_queue.html", referrals=q.referrals, cards=q.cards),
        "summary": render_template(
            "inbox/_summary.html", q=q, show=show, filters=filters, filter_args=_filter_args(filters)
        ),
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
        sms_rules=counting_rules(fold_accents=rt.settings.fold_accents),
    )


@bp.post("/referrals/<int:referral_id>/claim")
def claim(referral_id: int) -> Response:
    cases.claim(runtime(), referral_id, _me())
    flash(DONE["claimed"].format(id=referral_id), "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/reply")
def reply(referral_id: int) -> Response:
    msg = cases.reply(runtime(), referral_id, _me(), request.form.get("body", ""))
    if msg.status in cases.NOT_SENT:
        flash(DONE["not_sent"].format(status=DELIVERY[msg.status]), "error")
    elif msg.status in cases.UNCERTAIN:
        flash(DONE["uncertain"], "error")
    else:
        flash(DONE["sent_to_chat" if msg.channel == "web" else "sent"], "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/notes")
def add_note(referral_id: int) -> Response:
    cases.add_note(runtime(), referral_id, _me(), request.form.get("body", ""))
    flash(DONE["note_saved"], "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/close")
def close(referral_id: int) -> Response:
    cancelled = cases.close(runtime(), referral_id, _me(), request.form.get("outcome", ""))
    flash(DONE["closed_and_cancelled" if cancelled else "closed"].format(id=referral_id, count=cancelled), "ok")
    return redirect(url_for("inbox.queue"))


@bp.post("/referrals/<int:referral_id>/reopen")
def reopen(referral_id: int) -> Response:
    cases.reopen(runtime(), referral_id, _me())
    flash(DONE["reopened"].format(id=referral_id), "ok")
    return _back(referral_id)


@bp.post("/referrals/<int:referral_id>/followups")
def schedule_followup(referral_id: int) -> Response:
    form = request.form
    row = cases.schedule_followup(
        runtime(), referral_id, _me(), form.get("template", ""), form.get("day", ""), form.get("time", "")
    )
    flash(DONE["checkin_set"].format(when=local(row.due_at)), "ok")
    return _back(referral_id)


@bp.post("/followups/<int:followup_id>/cancel")
def cancel_followup(followup_id: int) -> Response:
    referral_id = cases.cancel_followup(runtime(), followup_id, _me())
    flash(DONE["checkin_cancelled"], "ok")
    return _back(referral_id)
