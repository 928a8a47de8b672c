"""GET /healthz: is the app up, can it reach its database, and does an urgent case wait unseen."""
from flask import Blueprint, jsonify
from sqlalchemy import func, or_, select

from .models import Referral, Resident
from .runtime import runtime
from .service import OPEN_REFERRAL

bp = Blueprint("health", __name__)

# Urgent referrals from a number we can trust (SMS, or a confirmed web number) that told nobody:
# no caseworker was on duty and no text reached the person on call.
_ATTENTION = (select(func.count(Referral.id)).join(Resident, Resident.id == Referral.resident_id)
              .where(Referral.urgent.is_(True), Referral.status.in_(OPEN_REFERRAL), Referral.notified_at.is_(None),
                     or_(Resident.channel != "web", Resident.phone.is_not(None))))


@bp.get("/healthz")
def healthz():
    rt = runtime()
    if not rt.db.ping():
        return jsonify(status="error", db="down"), 503
    with rt.db.sessions() as s:
        attention = s.scalar(_ATTENTION) or 0
    return jsonify(status="ok", db="ok", attention=attention)
