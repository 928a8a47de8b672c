"""Twilio's messaging webhook and status callback: signed requests in, TwiML out."""

from __future__ import annotations

import hmac
import re

from flask import Blueprint, Response, abort, request
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot import logs
from bot.messaging.outbound import UNDELIVERABLE, apply_error
from bot.messaging.phones import BadNumber, split_channel, to_e164
from bot.storage.models import Message
from bot.storage.statuses import MessageStatus
from bot.web.context import runtime

# An app of their own (app.py): signed by Twilio and sent from Twilio's addresses, these requests need
# no CSRF token, and a per-address limit would only throttle Twilio.
bp = Blueprint("sms", __name__)
PATHS = frozenset({"/sms", "/sms/status"})

# A status only moves forward: a late "sent" never overwrites "delivered".
STATUS_RANK: dict[str, int] = {
    MessageStatus.ACCEPTED: 0,
    MessageStatus.SCHEDULED: 0,
    MessageStatus.QUEUED: 1,
    MessageStatus.SENDING: 2,
    MessageStatus.SENT: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.UNDELIVERED: 4,
    MessageStatus.FAILED: 4,
    MessageStatus.READ: 5,
}
TWIML = "text/xml"
# A Twilio SID is letters and digits (two letters and 32 hex digits); anything else is not Twilio's.
SID = re.compile(r"[A-Za-z0-9]{1,64}")


def _signed_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path, else the URL as seen through ProxyFix."""
    base = runtime().settings.public_base_url
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return f"{base}{request.path}" + (f"?{query}" if query else "")


@bp.before_request
def check_signature() -> Response | None:
    token = runtime().settings.twilio_auth_token
    if not token:
        return Response(
            "TWILIO_AUTH_TOKEN is not configured: refusing unsigned webhooks.\n", 503, mimetype="text/plain"
        )
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not _signed(RequestValidator(token), _signed_url(), signature):
        logs.event("webhook.bad_signature", path=request.path)
        abort(403)
    return None


def _signed(validator: RequestValidator, url: str, signature: str) -> bool:
    """The URL as Twilio signs it, computed once; `validate` (which tries it with and without a port,
    computing both every time) only when that does not match."""
    exact = hmac.compare_digest(validator.compute_signature(url, request.form), signature)
    return exact or validator.validate(url, request.form, signature)


@bp.errorhandler(OperationalError)
def database_down(exc: OperationalError) -> Response:
    # 503 quickly, so Twilio's fallback URL takes over while the database is away.
    logs.logger.warning("webhook.database_unavailable %s", type(exc.orig).__name__)
    return Response("database unavailable\n", 503, mimetype="text/plain")


@bp.post("/sms")
def inbound() -> Response:
    form = request.form
    try:
        channel, raw = split_channel(form.get("From", ""))
        phone = to_e164(raw)
    except BadNumber as exc:
        return Response(f"From: {exc}\n", 400, mimetype="text/plain")
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    if not sid:
        return Response("missing MessageSid\n", 400, mimetype="text/plain")
    if not SID.fullmatch(sid):
        return Response("MessageSid is not a Twilio SID\n", 400, mimetype="text/plain")
    handled = runtime().service.handle(
        channel=channel,
        address=phone,
        text=form.get("Body"),
        provider_sid=sid,
        media_count=_int(form.get("NumMedia")),
        carrier_keyword=_carrier_keyword(form.get("OptOutType")),
    )
    twiml = MessagingResponse()
    for reply in handled.replies:
        twiml.message(reply.body, action=_status_url(reply.id))
    return Response(str(twiml), mimetype=TWIML)


def _status_url(reply_id: int) -> str:
    base = runtime().settings.public_base_url or request.host_url.rstrip("/")
    return f"{base}/sms/status?reply={reply_id}"


def _carrier_keyword(raw: str | None) -> str | None:
    """Twilio's OptOutType: it already answered STOP, START or HELP; any other value means nothing."""
    value = (raw or "").strip().upper()
    return value if value in ("STOP", "START", "HELP") else None


def _int(raw: str | None) -> int:
    """A count, code or id Twilio sends as plain digits; anything else ('²', junk, too long) is 0."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


@bp.post("/sms/status")
def status() -> Response:
    form = request.form
    sid, new = form.get("MessageSid"), (form.get("MessageStatus") or "").lower()
    if not sid or not SID.fullmatch(sid) or new not in STATUS_RANK:
        return Response(status=204)
    rt = runtime()
    with rt.db.transaction() as s:
        msg = s.scalar(select(Message).where(Message.provider_sid == sid).with_for_update())
        if msg is None and (reply_id := _int(request.args.get("reply"))):
            msg = s.get(Message, reply_id, with_for_update=True)
            if msg is not None and msg.provider_sid is None:
                msg.provider_sid = sid
        if msg is None or msg.direction != "out":
            return Response(status=204)
        _advance(msg, new, _int(form.get("ErrorCode")) or None, rt.clock.now())
        if msg.error_code and msg.kind != "notice":
            apply_error(s, msg.resident_id, msg.error_code, rt.clock.now())
    logs.event("sms.status", sid=sid, status=msg.status, error=msg.error_code or "-")
    return Response(status=204)


def _advance(msg: Message, new: str, error_code: int | None, now) -> None:
    """Move a stored status forward, never back; keep the error's reason."""
    if STATUS_RANK.get(new, 0) < STATUS_RANK.get(msg.status, 0):
        return
    msg.status, msg.updated_at = new, now
    if error_code:
        msg.error_code = error_code
        msg.error_message = UNDELIVERABLE.get(error_code, msg.error_message)
        if error_code in UNDELIVERABLE:
            msg.status = MessageStatus.UNDELIVERED
