"""GET /healthz: is the app up and can it reach its database."""
from flask import Blueprint, jsonify

from .runtime import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    if runtime().db.ping():
        return jsonify(status="ok", db="ok")
    return jsonify(status="error", db="down"), 503
