"""Caseworker accounts: argon2 passwords, Flask-Login sessions, CSRF, and a lockout kept in the database.

The lockout (bot/lockout.py) counts wrong passwords per account and per client in the database,
so it holds across worker processes, and holds back only the clients that failed; the
per-address rate limit (Flask-Limiter) slows guessing on top of it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response  # what redirect() returns; Flask's Response is one

from bot import logs
from bot.casework import audit, lockout
from bot.config import ConfigError, parse_office_hours
from bot.messaging.phones import BadNumber, valid_e164
from bot.runtime import Runtime
from bot.storage.db import Database
from bot.storage.models import Caseworker
from bot.web.context import runtime
from bot.web.limits import limiter
from bot.web.transport import security_headers

MIN_PASSWORD = 12
MAX_PASSWORD = 256  # argon2 takes any length; this only bounds the work one request can ask for
SESSION_MAX_AGE = timedelta(hours=12)  # one shift; a shared phone does not stay logged in for days
LOGIN_RATE = "10 per minute"
ROLES = ("caseworker", "admin")

# Unknown, turned-off and waiting accounts get these same words and status, after the same work.
WRONG = "Wrong email or password."
WAIT = "Too many wrong tries from here. Try again in {minutes} min, or ask an admin to unlock the account."


hasher = PasswordHasher()
bp = Blueprint("auth", __name__)


class AccountError(ValueError):
    """An account change that cannot be made; the message is for the person who asked."""


# -- passwords and account fields ------------------------------------------------------------


def hash_password(password: str) -> str:
    check_password(password)
    return hasher.hash(password)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"The password must be at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"The password must be at most {MAX_PASSWORD} characters.")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return hasher.hash("no such account: spend the same time as a real check")


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError("That is not an email address.")
    return email


def normalize_phone(raw: str | None) -> str | None:
    """A caseworker's mobile for notices, in E.164; empty means none."""
    if not raw or not raw.strip():
        return None
    try:
        return valid_e164(raw)
    except BadNumber:
        raise AccountError("That is not a valid phone number.") from None


def normalize_duty_hours(raw: str | None) -> str | None:
    """'Mon-Fri 09:00-17:00'; empty means the program's office hours."""
    if not raw or not raw.strip():
        return None
    try:
        parse_office_hours(raw)
    except ConfigError:
        raise AccountError("Duty hours must look like 'Mon-Fri 09:00-17:00'.") from None
    return raw.strip()


def session_key(row: Caseworker) -> str:
    """Part of the login session id: changing the password, or logging out, ends every other session."""
    return f"{hashlib.sha256(row.password_hash.encode()).hexdigest()[:16]}.{row.session_epoch}"


# -- account changes ----------------------------------------------------------------------------


def create_caseworker(
    db: Database,
    now: datetime,
    *,
    email: str,
    name: str,
    password: str,
    role: str = "caseworker",
    phone: str | None = None,
    duty_hours: str | None = None,
    actor_id: int | None = None,
) -> int:
    """Add an account; raise AccountError with a plain reason when a field is wrong."""
    if role not in ROLES:
        raise AccountError(f"The role must be one of: {', '.join(ROLES)}.")
    if not name.strip():
        raise AccountError("Give the caseworker's name.")
    row = Caseworker(
        email=normalize_email(email),
        name=name.strip()[:120],
        role=role,
        phone=normalize_phone(phone),
        duty_hours=normalize_duty_hours(duty_hours),
        password_hash=hash_password(password),
        active=True,
        created_at=now,
    )
    try:
        with db.transaction() as s:
            s.add(row)
            s.flush()
            audit.record(s, "caseworker.created", now, actor_id=actor_id, caseworker=row.id, role=role)
    except IntegrityError:
        raise AccountError(f"An account for {row.email} already exists.") from None
    return row.id


def set_password(db: Database, now: datetime, caseworker_id: int, password: str, actor_id: int, secret: str) -> None:
    """A new password; it also clears the wrong-password counts and ends the account's other sessions."""
    new_hash = hash_password(password)
    with db.transaction() as s:
        row = _account(s, caseworker_id)
        row.password_hash = new_hash
        lockout.clear_account(s, account_key(secret, row.email))
        audit.record(s, "caseworker.password_reset", now, actor_id=actor_id, caseworker=caseworker_id)


def unlock(db: Database, secret: str, now: datetime, email: str, actor_id: int | None = None, via: str = "cli") -> int:
    """Clear every wrong-password count against the account; returns how many clients had some."""
    with db.transaction() as s:
        row = s.scalar(select(Caseworker).where(Caseworker.email == normalize_email(email)))
        if row is None:
            raise AccountError(f"There is no account for {email.strip()}.")
        cleared = lockout.clear_account(s, account_key(secret, row.email))
        audit.record(s, "auth.unlocked", now, actor_id=actor_id, caseworker=row.id, via=via, clients=cleared)
    logs.event("auth.unlocked", caseworker=row.id, clients=cleared)
    return cleared


def account_key(secret: str, email: str) -> str:
    return lockout.keys(secret, email, "").account


def accounts_held(db: Database, secret: str, now: datetime, rows: list[Caseworker]) -> set[int]:
    """The accounts whose wrong-password count now makes failing clients wait (for the staff page)."""
    with db.sessions() as s:
        return {
            row.id
            for row in rows
            if lockout.account_failures(s, account_key(secret, row.email), now) >= lockout.FREE_TRIES
        }


def set_active(db: Database, now: datetime, caseworker_id: int, active: bool, actor_id: int) -> None:
    if caseworker_id == actor_id and not active:
        raise AccountError("You cannot turn off your own account.")
    with db.transaction() as s:
        _account(s, caseworker_id).active = active
        audit.record(
            s,
            "caseworker.activated" if active else "caseworker.deactivated",
            now,
            actor_id=actor_id,
            caseworker=caseworker_id,
        )


def _account(s: Session, caseworker_id: int) -> Caseworker:
    row = s.get(Caseworker, caseworker_id, with_for_update=True)
    if row is None:
        raise AccountError("There is no such account.")
    return row


# -- logging in ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffUser(UserMixin):
    """The logged-in caseworker, as Flask-Login sees them."""

    id: int
    name: str
    role: str
    key: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:
        return f"{self.id}:{self.key}"


@dataclass(frozen=True)
class Login:
    user: StaffUser | None
    error: str | None = None
    retry_after: timedelta | None = None  # set when the attempt was not checked: wait this long


def authenticate(rt: Runtime, email: str, password: str, client: str) -> Login:
    """Check a password; count a wrong one against the account and the client (bot/lockout.py).

    Every attempt runs argon2 exactly once, against the account's hash or a dummy one, and an
    unknown, turned-off or waiting account answers with the same words and status as a real one
    with the same history: neither the answer nor its timing tells them apart.
    """
    now = rt.clock.now()
    try:
        address: str | None = normalize_email(email)
    except AccountError:
        address = None
    k = lockout.keys(rt.settings.secret_key, address or email.strip().lower()[:254], client)
    with rt.db.sessions() as s:
        row = s.scalar(select(Caseworker).where(Caseworker.email == address)) if address else None
        wait = lockout.retry_after(lockout.failures(s, k, now), now)
    checked = row is not None and wait is None and len(password) <= MAX_PASSWORD
    stored = row.password_hash if row is not None and checked else _dummy_hash()
    right = _verify(stored, password[:MAX_PASSWORD]) and checked
    if wait is not None:
        logs.event("auth.waiting", seconds=math.ceil(wait.total_seconds()))
        return Login(None, WAIT.format(minutes=max(1, math.ceil(wait.total_seconds() / 60))), wait)
    if row is None or not right or not row.active:
        reason = "unknown" if row is None else "wrong" if not right else "turned_off"
        _count_failure(rt, k, row.id if row else None, reason, now)
        return Login(None, WRONG)
    return Login(_logged_in(rt, row.id, password, k, now))


def _count_failure(rt: Runtime, k: lockout.Keys, caseworker_id: int | None, reason: str, now: datetime) -> None:
    with rt.db.transaction() as s:
        lockout.record_failure(s, k, now)
        audit.record(s, "auth.failed", now, caseworker=caseworker_id, reason=reason)  # actor unknown
    logs.event("auth.failed", caseworker=caseworker_id or "-", reason=reason)


def _logged_in(rt: Runtime, caseworker_id: int, password: str, k: lockout.Keys, now: datetime) -> StaffUser:
    with rt.db.transaction() as s:
        row = s.get(Caseworker, caseworker_id, with_for_update=True)
        if row is None:  # read a moment ago in the same request; accounts are never deleted
            raise LookupError(f"caseworker {caseworker_id} is gone")
        if hasher.check_needs_rehash(row.password_hash):
            row.password_hash = hasher.hash(password)
        row.last_login_at = now
        lockout.clear_client(s, k)
        audit.record(s, "auth.login", now, actor_id=caseworker_id)
        return StaffUser(row.id, row.name, row.role, session_key(row))


def load_user(user_id: str) -> StaffUser | None:
    """The session's caseworker, while the account is active, the password unchanged and the login fresh."""
    number, _, key = user_id.partition(":")
    rt = runtime()
    login_at = session.get("login_at")
    if not number.isdigit() or not isinstance(login_at, (int, float)):
        return None
    if rt.clock.now().timestamp() - login_at > SESSION_MAX_AGE.total_seconds():
        return None
    with rt.db.sessions() as s:
        row = s.get(Caseworker, int(number))
        if row is None or not row.active or session_key(row) != key:
            return None
        return StaffUser(row.id, row.name, row.role, key)


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host (an open redirect), nothing a Location header
    cannot carry (a newline, any control or non-ASCII character: the browser sends those encoded)."""
    if not target or "\\" in target or not (target.isascii() and target.isprintable()):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# -- views ----------------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_RATE, methods=["POST"])
def login() -> Response | str | tuple[str, int] | tuple[str, int, dict[str, str]]:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(target or url_for("inbox.queue"))
        return render_template("inbox/login.html", next=target)
    rt = runtime()
    result = authenticate(
        rt, request.form.get("email", ""), request.form.get("password", ""), request.remote_addr or "unknown"
    )
    if result.user is None:
        page = render_template(
            "inbox/login.html", next=target, error=result.error, email=request.form.get("email", "")[:254]
        )
        if result.retry_after is None:
            return page, 401
        return page, 429, {"Retry-After": str(math.ceil(result.retry_after.total_seconds()))}
    session.clear()  # a brand-new session at login: nothing planted before it survives (no fixation)
    login_user(result.user)
    session["login_at"] = rt.clock.now().timestamp()
    return redirect(target or url_for("inbox.queue"))


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        rt = runtime()
        with rt.db.transaction() as s:
            row = s.get(Caseworker, current_user.id, with_for_update=True)
            if row is not None:
                row.session_epoch += 1
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.errorhandler(TooManyRequests)
def too_many(exc: TooManyRequests) -> tuple[str, int]:
    return render_template(
        "inbox/login.html", next=None, error="Too many tries from here. Wait a minute and try again."
    ), 429


staff_headers = security_headers("same-origin")  # after-request hook for the staff blueprints


bp.after_request(staff_headers)


def unauthorized() -> Response | tuple[dict, int]:
    if request.path.endswith(".json"):
        return {"error": "login required"}, 401
    here = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=here))


def _csrf_failed(exc: CSRFError) -> tuple[str, int]:
    return render_template(
        "inbox/error.html",
        message=("This form has expired or came from another site. Go back, reload the page and try again."),
    ), 400


def init_app(app: Flask) -> CSRFProtect:
    """Sessions, CSRF on every form and the login view; returns CSRFProtect so webhooks can be exempted."""
    # Tokens live as long as the session (a shift at most): a page left open on a phone still works.
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    manager = LoginManager(app)
    manager.session_protection = "strong"
    manager.user_loader(load_user)
    manager.unauthorized_handler(unauthorized)
    csrf = CSRFProtect(app)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_blueprint(bp)
    return csrf
