"""Web chat: the same conversation service as SMS, as a page and a small JSON API.

The visitor is known only by a random `chat_key` kept in Flask's signed session
cookie: the server makes it, so nobody can pick (or guess) another visitor's thread.
The JSON endpoints are not behind CSRF tokens; a POST must instead be JSON (which a
cross-site form cannot send without a CORS preflight we never grant) and come from
this site's own origin.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from flask import Blueprint, Response, jsonify, redirect, render_template, request, session, url_for
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as WerkzeugResponse

from bot import logs
from bot.casework import audit
from bot.messaging import verify
from bot.storage.models import Message, Resident
from bot.storage.statuses import MessageStatus
from bot.web.context import runtime
from bot.web.limits import limiter
from bot.web.transport import security_headers

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/chat/static")

MAX_TEXT = 2000
MAX_PHONE = 40
MAX_CODE = 20
MAX_ID_DIGITS = 18  # message ids fit a BIGINT; a longer "after" is not one we gave out
PAGE_SIZE = 50  # messages per poll; the page asks again from the last id it got
SHOWN_KINDS = {"caseworker": "caseworker", "followup": "bot"}  # never "notice": those are for staff
# A person typing rarely sends more than a few a minute; an address (a shelter's wifi,
# a carrier's NAT) may carry many people, so it gets more room.
PER_VISITOR = "20/minute;200/hour"
PER_ADDRESS = "120/minute"
PHONE_PER_ADDRESS = "30/hour"  # codes and tries; each number and visitor also has a daily limit
NEUTRAL_SITE = "https://www.weather.gov"

# The page's own words live beside its template; the bot's words live in flows/.
LABELS: dict[str, dict[str, str]] = yaml.safe_load(
    (Path(__file__).parent / "templates" / "chat" / "labels.yaml").read_text(encoding="utf-8")
)


class BadRequest(Exception):
    """A request the page would never send; answered with its reason, never a 5xx."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


# -- the visitor ----------------------------------------------------------------------------


def _chat_key() -> str | None:
    """The visitor's key from the signed cookie; a forged cookie never got this far."""
    key = session.get("chat_key")
    return key if isinstance(key, str) else None


def _live_key() -> str:
    """The visitor's key while it still names a conversation, else a new one: a key ended by Leave
    now (or a purge) never names a conversation again, whoever kept a copy of the cookie."""
    key = _chat_key()
    if key is not None:
        with runtime().db.sessions() as s:
            if s.scalar(select(Resident.id).where(Resident.chat_key == key)) is not None:
                return key
    key = session["chat_key"] = secrets.token_urlsafe(32)
    return key


def _visitor() -> str:
    """Rate-limit key: the conversation if there is one, else the address."""
    return f"chat:{_chat_key()}" if _chat_key() else f"addr:{request.remote_addr}"


def _resident(s: Session, key: str) -> Resident | None:
    return s.scalar(select(Resident).where(Resident.chat_key == key))


# -- request checks and answers --------------------------------------------------------------


@bp.before_request
def same_origin_json() -> Response | None:
    """POSTs must be JSON from this very site (the CSRF defence of this blueprint)."""
    if request.method != "POST":
        return None
    if not request.is_json:
        return _error("send JSON (Content-Type: application/json)", 415)
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if urlsplit(source).netloc != request.host:
        logs.event("chat.cross_origin", path=request.path)
        return _error("cross-site request refused", 403)
    return None


bp.after_request(security_headers("no-referrer"))  # the CSS and JS may be cached; talk may not


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Response:
    return _error(exc.reason, exc.status)


@bp.errorhandler(verify.CodeRefused)
def code_refused(exc: verify.CodeRefused) -> Response:
    return _error(exc.reason, exc.status)


@bp.errorhandler(TooManyRequests)
def too_many(exc: TooManyRequests) -> Response:
    return _error("too many messages; wait a minute", 429)


@bp.errorhandler(OperationalError)
def database_down(exc: OperationalError) -> Response:
    logs.logger.warning("chat.database_unavailable %s", type(exc.orig).__name__)
    return _error("the chat is down for a moment; try again soon", 503)


def _error(reason: str, status: int) -> Response:
    resp = jsonify(error=reason)
    resp.status_code = status
    return resp


def _json_object() -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a message the page would send
        data = None
    if not isinstance(data, dict):
        raise BadRequest('send a JSON object, like {"text": "hi"}')
    return data


def _text_field(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if not value.strip():
        raise BadRequest(f"{name} is empty")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    try:
        value.encode("utf-8")  # JSON may carry lone surrogates no database can store
    except UnicodeEncodeError:
        raise BadRequest(f"{name} is not valid text") from None
    return value


# -- routes -------------------------------------------------------------------------------------


@bp.get("/")
def home() -> WerkzeugResponse:
    """The site's front door: residents land in the chat (staff find the sign-in link at its foot)."""
    return redirect(url_for("web.page"))


@bp.get("/chat")
def page() -> str:
    key, lang = _chat_key(), "en"
    if key:
        with runtime().db.sessions() as s:
            resident = _resident(s, key)
            lang = resident.language if resident and resident.language in LABELS else "en"
    return render_template("chat/chat.html", lang=lang, t=LABELS[lang], labels=LABELS, neutral_site=NEUTRAL_SITE)


@bp.post("/chat/messages")
@limiter.limit(PER_VISITOR, key_func=_visitor)
@limiter.limit(PER_ADDRESS)
def post_message() -> Response:
    text = _text_field(_json_object(), "text", MAX_TEXT)
    handled = runtime().service.handle(channel="web", address=_live_key(), text=text, client=request.remote_addr)
    return jsonify(replies=[r.body for r in handled.replies], options=list(handled.options))


@bp.get("/chat/messages")
def new_messages() -> Response:
    """What reached this visitor outside their own POSTs: caseworker replies, check-ins."""
    after = request.args.get("after", "0")
    if not (after.isascii() and after.isdigit() and len(after) <= MAX_ID_DIGITS):
        raise BadRequest("after must be a message id")
    key, out = _chat_key(), []
    if key:
        with runtime().db.sessions() as s:
            rows = s.scalars(
                select(Message)
                .join(Resident, Resident.id == Message.resident_id)
                .where(
                    Resident.chat_key == key,
                    Message.direction == "out",
                    Message.id > int(after),
                    Message.kind.in_(SHOWN_KINDS),
                    Message.status != MessageStatus.SKIPPED_OPTED_OUT,
                )
                .order_by(Message.id)
                .limit(PAGE_SIZE)
            )
            out = [
                {"id": m.id, "body": m.body or "", "from": SHOWN_KINDS[m.kind], "at": m.created_at.isoformat()}
                for m in rows
            ]
    return jsonify(messages=out, last=out[-1]["id"] if out else int(after))


@bp.post("/chat/phone")
@limiter.limit(PER_VISITOR, key_func=_visitor)
@limiter.limit(PER_ADDRESS)
@limiter.limit(PHONE_PER_ADDRESS)
def save_phone() -> Response:
    """A number for a caseworker to text back, in two steps: {"phone"} texts a code to it;
    {"phone", "code", "consent": true} proves it, and only then is it used (see bot/verify.py)."""
    data = _json_object()
    phone = _text_field(data, "phone", MAX_PHONE)
    if "code" not in data:
        verify.request_code(runtime(), _live_key(), phone)
        return jsonify(sent=True)
    if data.get("consent") is not True:
        raise BadRequest("consent must be true")
    code = _text_field(data, "code", MAX_CODE)
    verify.confirm_code(runtime(), _chat_key(), phone, code)
    return jsonify(saved=True)


@bp.post("/chat/leave")
def leave() -> Response:
    """Leave now: end this browser's conversation on the server too. Its key is revoked, so a copy of
    the cookie reads nothing and writes nothing; the record stays for the caseworkers."""
    key = _chat_key()
    if key is not None:
        rt = runtime()
        with rt.db.transaction() as s:
            left = s.scalar(
                update(Resident).where(Resident.chat_key == key).values(chat_key=None).returning(Resident.id)
            )
            if left is not None:
                audit.record(s, "chat.left", rt.clock.now(), resident_id=left)
    session.clear()
    return Response(status=204)
