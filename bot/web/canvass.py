"""/canvass: the phone-sized form a canvasser fills in at a door (bot/messaging/canvass.py does the work).

The page keeps what was typed on the phone (IndexedDB, static/canvass.js) and sends a finished visit
when the network is back; the number is proven first, online, by a code the resident reads back.
JSON endpoints end in .json, so an expired login answers 401 rather than the login page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from flask_login import current_user, login_required

from bot.casework import campaigns
from bot.conversation.contact import ContactPreference
from bot.conversation.flows import INTAKE_FLOW, MENU_STEP, Ask
from bot.messaging import canvass, verify
from bot.web.auth import staff_headers
from bot.web.context import runtime

bp = Blueprint(
    "canvass", __name__, template_folder="templates", static_folder="static", static_url_path="/canvass/static"
)
bp.after_request(staff_headers)

# "Is it safe for us to text this number?" as the resident answers it (ContactPreference).
SAFE_TO_TEXT = {"1": ContactPreference.ANY, "2": ContactPreference.REPLY_ONLY, "3": ContactPreference.NONE}


@bp.errorhandler(verify.CodeRefused)
def code_refused(exc: verify.CodeRefused) -> tuple[Response, int]:
    return jsonify(error=exc.reason), exc.status


@bp.errorhandler(canvass.VisitRefused)
def visit_refused(exc: canvass.VisitRefused) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


@bp.get("/canvass")
@login_required
def form() -> str:
    rt = runtime()
    with rt.db.sessions() as s:
        running = [c for c in campaigns.listing(s) if c.active(rt.clock.now())]
    return render_template(
        "canvass/form.html", needs=_needs(), languages=rt.engine.languages, campaigns=running, safe=SAFE_TO_TEXT
    )


@bp.post("/canvass/code.json")
@login_required
def send_code() -> Response:
    """Text a code to the number; the answer carries the visit's key for the rest of the visit."""
    body = _json()
    visit = str(body.get("visit") or "") or canvass.new_visit()
    canvass.send_code(runtime(), current_user.id, visit, str(body.get("phone") or ""))
    return jsonify(visit=visit)


@bp.post("/canvass/check.json")
@login_required
def check_code() -> Response:
    body = _json()
    canvass.check_code(
        runtime(),
        current_user.id,
        str(body.get("visit") or ""),
        str(body.get("phone") or ""),
        str(body.get("code") or ""),
    )
    return jsonify(proven=True)


@bp.post("/canvass/visits.json")
@login_required
def record() -> tuple[Response, int]:
    body = _json()
    if body.get("consent") is not True:
        raise canvass.VisitRefused("consent: ask if we may text them, and tick the box when they say yes")
    rt = runtime()
    visit = canvass.Visit(
        needs=tuple(n for n in body.get("needs") or () if n in dict(_needs())),
        zip_code=rt.engine.matcher.zip_code(str(body.get("zip") or "")),
        language=lang if (lang := str(body.get("language") or "")) in rt.engine.languages else rt.engine.languages[0],
        preference=SAFE_TO_TEXT.get(str(body.get("safe_to_text")), ContactPreference.NONE),
        note=str(body.get("note") or ""),
        campaign=str(body.get("campaign") or "").upper() or None,
        heard_at=_moment(body.get("heard_at")),
    )
    done = canvass.record_visit(rt, current_user.id, str(body.get("visit") or ""), visit)
    return jsonify(referrals=list(done.referrals), duplicate=done.duplicate), 200 if done.duplicate else 201


def _needs() -> list[tuple[str, str]]:
    """The needs a canvasser can tick: the menu's options that have a flow, in the menu's words."""
    flows = runtime().engine.flows
    menu = flows.flows[INTAKE_FLOW].steps[MENU_STEP]
    assert isinstance(menu, Ask)
    lang = flows.languages[0]
    return [(o.value, o.label[lang]) for o in menu.options if flows.for_category(o.value)]


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise canvass.VisitRefused("the page sent something we cannot read; reload it")
    return body


def _moment(raw: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment
