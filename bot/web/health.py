"""GET /healthz: is the app up, can it reach its database, and does an urgent case wait unseen."""

from flask import Blueprint, jsonify
from sqlalchemy import func, select

from bot.messaging.service import OPEN_REFERRAL
from bot.messaging.triage import Tier
from bot.storage.models import Referral
from bot.web.context import runtime

bp = Blueprint("health", __name__)

# Urgent referrals from a number we can trust (SMS, or a confirmed web number) that told nobody:
# no caseworker was on duty and no text reached the person on call.
_ATTENTION = select(func.count(Referral.id)).where(
    Referral.urgent.is_(True),
    Referral.status.in_(OPEN_REFERRAL),
    Referral.notified_at.is_(None),
    Referral.tier == Tier.TRUSTED,
)


@bp.get("/healthz")
def healthz():
    rt = runtime()
    if not rt.db.ping():
        return jsonify(status="error", db="down"), 503
    with rt.db.sessions() as s:
        attention = s.scalar(_ATTENTION) or 0
    return jsonify(status="ok", db="ok", attention=attention)
