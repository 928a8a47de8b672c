"""Admin pages under /inbox/admin: staff accounts and reassigning referrals."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response  # what redirect() returns; Flask's Response is one

from bot.casework import cases
from bot.storage.models import Caseworker
from bot.web import auth
from bot.web.auth import AccountError
from bot.web.context import runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin() -> tuple[str, int] | None:
    # The inbox blueprint's login check runs first; this one only sorts admins from caseworkers.
    if not current_user.is_admin:
        return render_template("inbox/error.html", message="Only an admin can do that."), 403
    return None


@bp.errorhandler(AccountError)
def account_error(exc: AccountError) -> Response:
    flash(str(exc), "error")
    return redirect(url_for(".staff"))


@bp.get("/")
def staff() -> str:
    rt = runtime()
    with rt.db.sessions() as s:
        people = list(s.scalars(select(Caseworker).order_by(Caseworker.active.desc(), Caseworker.name)))
    held = auth.accounts_held(rt.db, rt.settings.secret_key, rt.clock.now(), people)
    return render_template(
        "inbox/staff.html", people=people, roles=auth.ROLES, held=held, min_password=auth.MIN_PASSWORD
    )


@bp.post("/caseworkers")
def create() -> Response:
    rt, form = runtime(), request.form
    auth.create_caseworker(
        rt.db,
        rt.clock.now(),
        email=form.get("email", ""),
        name=form.get("name", ""),
        password=form.get("password", ""),
        role=form.get("role", "caseworker"),
        phone=form.get("phone"),
        duty_hours=form.get("duty_hours"),
        actor_id=current_user.id,
    )
    flash(f"Account for {form.get('name', '').strip()} created.", "ok")
    return redirect(url_for(".staff"))


@bp.post("/caseworkers/<int:caseworker_id>/active")
def set_active(caseworker_id: int) -> Response:
    rt = runtime()
    active = request.form.get("active") == "1"
    auth.set_active(rt.db, rt.clock.now(), caseworker_id, active, current_user.id)
    flash("Account turned on." if active else "Account turned off.", "ok")
    return redirect(url_for(".staff"))


@bp.post("/caseworkers/<int:caseworker_id>/password")
def reset_password(caseworker_id: int) -> Response:
    rt = runtime()
    auth.set_password(
        rt.db, rt.clock.now(), caseworker_id, request.form.get("password", ""), current_user.id, rt.settings.secret_key
    )
    flash("Password set. Its wrong tries are cleared; tell the caseworker the new password in person.", "ok")
    return redirect(url_for(".staff"))


@bp.post("/referrals/<int:referral_id>/assign")
def assign(referral_id: int) -> Response:
    raw = request.form.get("caseworker_id", "")
    if not raw.isdigit():
        raise cases.CaseError("Pick a caseworker.")
    cases.assign(runtime(), referral_id, current_user.id, int(raw))
    flash(f"Referral #{referral_id} reassigned.", "ok")
    return redirect(url_for("inbox.thread", referral_id=referral_id))
