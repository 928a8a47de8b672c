"""Caseworker accounts: the CLI, argon2 hashes, login and lockout, sessions, CSRF, admin pages."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from staff_helpers import PASSWORD, Staff, add_caseworker, fast_argon2  # noqa: F401 (autouse fixture)

from bot import create_app
from bot.casework import lockout
from bot.cli import main
from bot.storage.models import AuditEvent, Caseworker, LoginFailure
from bot.web import auth


def account(rt, email: str = "ana@example.org") -> Caseworker:
    with rt.db.sessions() as s:
        return s.scalar(select(Caseworker).where(Caseworker.email == email))


def audits(rt, action: str) -> list[AuditEvent]:
    with rt.db.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


@pytest.fixture
def staff(client) -> Staff:
    return Staff(client)


# -- the CLI ------------------------------------------------------------------------------------------------


def create_cli(env, *args: str, password_input: str = PASSWORD + "\n"):
    return CliRunner().invoke(main, ["create-caseworker", *args], input=password_input, env=env)


def test_create_caseworker_reads_the_password_from_stdin_and_stores_an_argon2_hash(env, rt):
    result = create_cli(
        env, "--email", "Ana@Example.org", "--name", "Ana Ruiz", "--role", "admin", "--phone", "(816) 555-0142"
    )
    assert result.exit_code == 0, result.output
    row = account(rt)
    assert (row.name, row.role, row.phone, row.active) == ("Ana Ruiz", "admin", "+18165550142", True)
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert auth.hasher.verify(row.password_hash, PASSWORD)


def test_create_caseworker_prompts_twice_at_a_terminal(env, rt, monkeypatch):
    monkeypatch.setattr("bot.cli._stdin_is_terminal", lambda: True)
    result = create_cli(env, "--email", "ben@example.org", "--name", "Ben", password_input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output and "Repeat for confirmation:" in result.output
    assert auth.hasher.verify(account(rt, "ben@example.org").password_hash, PASSWORD)


@pytest.mark.parametrize(
    "args, password, message",
    [
        (["--email", "a@example.org", "--name", "A"], "too short\n", "at least 12 characters"),
        (["--email", "not-an-email", "--name", "A"], PASSWORD + "\n", "not an email"),
        (["--email", "a@example.org", "--name", "A", "--phone", "12"], PASSWORD + "\n", "not a valid phone"),
        (["--email", "a@example.org", "--name", "A", "--duty-hours", "whenever"], PASSWORD + "\n", "Duty hours"),
    ],
)
def test_create_caseworker_refuses_bad_input_in_plain_words(env, rt, args, password, message):
    result = create_cli(env, *args, password_input=password)
    assert result.exit_code == 1 and message in result.output
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count(Caseworker.id))) == 0


def test_create_caseworker_refuses_a_second_account_for_the_same_email(env, rt):
    assert create_cli(env, "--email", "ana@example.org", "--name", "Ana").exit_code == 0
    result = create_cli(env, "--email", "ANA@example.org", "--name", "Ana again")
    assert result.exit_code == 1 and "already exists" in result.output


# -- logging in ----------------------------------------------------------------------------------------------


def test_the_right_password_logs_in_and_the_wrong_one_is_refused(rt, staff):
    add_caseworker(rt)
    wrong = staff.login(password="not the password at all")
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.get_data(as_text=True)
    assert staff.get("/inbox/").status_code == 302
    unknown = staff.login(email="nobody@example.org")
    assert unknown.status_code == 401 and "Wrong email or password" in unknown.get_data(as_text=True)
    ok = staff.login()
    assert ok.status_code == 302 and ok.headers["Location"] == "/inbox/"
    assert staff.get("/inbox/").status_code == 200
    assert account(rt).last_login_at == rt.clock.now()


def test_a_deactivated_account_cannot_log_in_and_its_open_session_ends(rt, staff, client, app):
    ana = add_caseworker(rt)
    assert staff.login().status_code == 302
    with rt.db.transaction() as s:
        s.get(Caseworker, ana).active = False
    assert staff.get("/inbox/").status_code == 302  # the session no longer counts
    refused = staff.login()
    assert refused.status_code == 401 and auth.WRONG in refused.get_data(as_text=True)
    assert audits(rt, "auth.failed")[-1].detail == {"caseworker": ana, "reason": "turned_off"}


def test_the_login_form_is_rate_limited_per_client(rt, staff):
    for i in range(10):
        assert staff.login(email=f"nobody{i}@example.org").status_code == 401
    limited = staff.login(email="nobody@example.org")
    assert limited.status_code == 429 and "Wait a minute" in limited.get_data(as_text=True)


def test_login_starts_a_new_session_so_nothing_planted_before_survives(rt, staff, client):
    add_caseworker(rt)
    with client.session_transaction() as sess:
        sess["planted"] = "by someone else"
    staff.login()
    with client.session_transaction() as sess:
        assert "planted" not in sess and sess.get("_user_id", "").startswith("1:")


def test_session_cookie_is_secure_http_only_and_same_site_lax(rt, staff):
    add_caseworker(rt)
    cookie = staff.login().headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_a_session_ends_after_a_shift(rt, staff, clock):
    add_caseworker(rt)
    staff.login()
    clock.set(clock.now() + timedelta(hours=13))
    assert staff.get("/inbox/").status_code == 302


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/inbox/?show=mine", "/inbox/?show=mine"),
        ("https://evil.example.com/", "/inbox/"),
        ("//evil.example.com/", "/inbox/"),
        ("/\\evil.example.com", "/inbox/"),
    ],
)
def test_login_returns_to_a_page_on_this_site_only(rt, staff, target, expected):
    add_caseworker(rt)
    assert staff.login(next=target).headers["Location"] == expected


def test_an_anonymous_visit_is_sent_to_login_and_back(rt, staff):
    add_caseworker(rt)
    first = staff.get("/inbox/?show=closed")
    assert first.status_code == 302 and first.headers["Location"] == "/login?next=/inbox/?show%3Dclosed"
    page = staff.get(first.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/inbox/?show=closed"' in page
    assert staff.login(next="/inbox/?show=closed").headers["Location"] == "/inbox/?show=closed"


def test_logout_ends_the_session(rt, staff):
    add_caseworker(rt)
    staff.login()
    assert staff.post("/logout").status_code == 302
    assert staff.get("/inbox/").status_code == 302


# -- CSRF -------------------------------------------------------------------------------------------------------


def test_a_form_post_without_the_csrf_token_is_refused(rt, staff, client, app, phone):
    assert app.config.get("WTF_CSRF_ENABLED", True), "CSRF stays on under TESTING"
    add_caseworker(rt)
    assert client.post("/login", data={"email": "ana@example.org", "password": PASSWORD}).status_code == 400
    staff.login()
    phone.text("talk to a person")
    refused = client.post("/inbox/referrals/1/claim")
    assert refused.status_code == 400 and "reload" in refused.get_data(as_text=True)
    forged = client.post("/inbox/referrals/1/claim", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    assert staff.post("/inbox/referrals/1/claim").status_code == 302  # with the page's token it works


def test_twilio_webhooks_need_no_csrf_token(phone):
    assert phone.text("hi")  # signed, form-encoded, no token: still answered


# -- admin pages ---------------------------------------------------------------------------------------------


def test_an_admin_creates_turns_off_and_resets_accounts(rt, client):
    add_caseworker(rt, email="boss@example.org", name="Boss", role="admin")
    admin = Staff(client)
    admin.login("boss@example.org")
    made = admin.post(
        "/inbox/admin/caseworkers",
        name="Ben",
        email="ben@example.org",
        password=PASSWORD,
        role="caseworker",
        phone="816-555-0177",
        duty_hours="Mon-Fri 12:00-20:00",
    )
    assert made.status_code == 302
    ben = account(rt, "ben@example.org")
    assert (ben.phone, ben.duty_hours, ben.role) == ("+18165550177", "Mon-Fri 12:00-20:00", "caseworker")
    assert "Ben" in admin.get("/inbox/admin/").get_data(as_text=True)

    too_short = admin.post("/inbox/admin/caseworkers", name="C", email="c@example.org", password="short")
    assert too_short.status_code == 302 and account(rt, "c@example.org") is None

    admin.post(f"/inbox/admin/caseworkers/{ben.id}/active", active="0")
    assert account(rt, "ben@example.org").active is False
    admin.post(f"/inbox/admin/caseworkers/{ben.id}/active", active="1")
    assert account(rt, "ben@example.org").active is True

    new_password = "another long password"
    admin.post(f"/inbox/admin/caseworkers/{ben.id}/password", password=new_password)
    assert auth.hasher.verify(account(rt, "ben@example.org").password_hash, new_password)
    actions = {
        e.action
        for e in audits(rt, "caseworker.created")
        + audits(rt, "caseworker.deactivated")
        + audits(rt, "caseworker.password_reset")
    }
    assert actions == {"caseworker.created", "caseworker.deactivated", "caseworker.password_reset"}


def test_a_password_reset_clears_the_wrong_tries_and_ends_the_other_sessions(rt, app):
    ana = add_caseworker(rt)
    add_caseworker(rt, email="boss@example.org", name="Boss", role="admin")
    caseworker, admin = Staff(app.test_client()), Staff(app.test_client())
    caseworker.login()
    for i in range(lockout.FREE_TRIES):
        Staff(from_address(app, "198.51.100.7")).login(password=f"forgotten password {i}")
    admin.login("boss@example.org")
    assert "Many wrong passwords" in admin.get("/inbox/admin/").get_data(as_text=True)
    admin.post(f"/inbox/admin/caseworkers/{ana}/password", password="a brand new password")
    assert caseworker.get("/inbox/").status_code == 302  # the old session is gone
    assert "Many wrong passwords" not in admin.get("/inbox/admin/").get_data(as_text=True)
    # the phone that kept failing waits no longer
    assert Staff(from_address(app, "198.51.100.7")).login(password="a brand new password").status_code == 302


def test_a_caseworker_cannot_use_the_admin_pages(rt, staff):
    add_caseworker(rt)
    staff.login()
    assert staff.get("/inbox/admin/").status_code == 403
    assert staff.post("/inbox/admin/caseworkers", name="X", email="x@example.org", password=PASSWORD).status_code == 403
    assert account(rt, "x@example.org") is None


def test_an_admin_cannot_turn_off_their_own_account(rt, staff):
    boss = add_caseworker(rt, role="admin")
    staff.login()
    staff.post(f"/inbox/admin/caseworkers/{boss}/active", active="0")
    assert account(rt).active is True
    assert "cannot turn off your own" in staff.get("/inbox/admin/").get_data(as_text=True)


# -- the lockout: counted per account and per client, never turned on staff ---------------------------------

ATTACKER, ANA_PHONE = "203.0.113.66", "198.51.100.23"


def from_address(app, address: str):
    """A browser at one network address (each its own cookies and its own login rate limit)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def no_sleep(monkeypatch):
    """A worker that sleeps stalls every request behind it (/sms too): waiting must be answered, never slept."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s in a request")

    monkeypatch.setattr(time, "sleep", refuse)


def test_wrong_passwords_from_a_stranger_never_lock_the_caseworker_out(rt, app, clock, no_sleep):
    """The replay: five wrong passwords used to lock the account for 15 minutes, for everyone, again and again."""
    add_caseworker(rt)
    attacker = Staff(from_address(app, ATTACKER))
    assert [attacker.login(password=f"guess {i}").status_code for i in range(5)] == [401] * 5
    assert Staff(from_address(app, ANA_PHONE)).login().status_code == 302, "the right password from her phone"
    waiting = attacker.login()
    # Retry-After is the lockout's 30 s, or the login form's own per-minute limit if that ends later
    assert waiting.status_code == 429 and 29 <= int(waiting.headers["Retry-After"]) <= 60
    for _ in range(6):  # the attacker keeps at it as each wait ends
        clock.set(clock.now() + timedelta(hours=1))
        attacker.login(password="another guess")
    assert Staff(from_address(app, ANA_PHONE)).login().status_code == 302
    assert Staff(from_address(app, "192.0.2.5")).login().status_code == 302, "or from anywhere new"


def test_the_wait_grows_and_holds_across_processes(settings, clock, rt, app, no_sleep):
    add_caseworker(rt)
    other = create_app(settings, clock=clock)  # a second worker process, in effect, on the same database
    try:
        here, there = rt, other.extensions["peaceline"]

        def attempt(runtime, password: str = PASSWORD) -> auth.Login:
            return auth.authenticate(runtime, "ana@example.org", password, ATTACKER)

        for i in range(lockout.FREE_TRIES):
            assert attempt(here if i % 2 else there, f"wrong password number {i}").error == auth.WRONG
        waits = []
        for _ in range(4):
            refused = attempt(here)  # even the right password is not checked while this client waits
            assert refused.user is None and refused.retry_after is not None
            assert attempt(there).retry_after == refused.retry_after, "the other process agrees"
            waits.append(int(refused.retry_after.total_seconds()))
            clock.set(clock.now() + refused.retry_after)
            assert attempt(there, "one more wrong guess").error == auth.WRONG
        assert waits == [30, 60, 120, 240]
        clock.set(clock.now() + timedelta(seconds=10))
        assert attempt(here).retry_after == timedelta(seconds=470)  # 480 after the last failure, 10 s gone
        assert "Try again in 8 min" in (attempt(here).error or "")
        clock.set(clock.now() + timedelta(seconds=470))
        assert attempt(here).user is not None, "once the wait is over the right password works"
    finally:
        other.extensions["peaceline"].db.dispose()


def test_the_wait_stops_growing_at_an_hour_and_old_failures_are_forgotten(rt, app, clock):
    add_caseworker(rt)
    attacker = Staff(from_address(app, ATTACKER))
    for _i in range(lockout.FREE_TRIES + 30):
        with rt.db.transaction() as s:
            lockout.record_failure(s, lockout.keys(rt.settings.secret_key, "ana@example.org", ATTACKER), clock.now())
    assert auth.authenticate(rt, "ana@example.org", PASSWORD, ATTACKER).retry_after == lockout.MAX_WAIT
    assert 3599 <= int(attacker.login().headers["Retry-After"]) <= 3600  # whole seconds, as the limiter rounds
    clock.set(clock.now() + lockout.FORGET_AFTER + timedelta(seconds=1))
    assert attacker.login().status_code == 302


def test_a_client_failing_on_many_accounts_waits_on_every_account(rt, app, no_sleep):
    add_caseworker(rt)
    stuffer = Staff(from_address(app, ATTACKER))
    for i in range(lockout.CLIENT_FREE_TRIES):
        with rt.db.transaction() as s:  # one wrong password on each of 20 addresses (the form's rate limit aside)
            lockout.record_failure(
                s, lockout.keys(rt.settings.secret_key, f"user{i}@example.org", ATTACKER), rt.clock.now()
            )
    refused = stuffer.login()
    assert refused.status_code == 429 and 29 <= int(refused.headers["Retry-After"]) <= 60
    assert Staff(from_address(app, ANA_PHONE)).login().status_code == 302


class CountingHasher:
    """The app's hasher, counting how often a password is checked against a hash."""

    def __init__(self, inner) -> None:
        self.inner, self.verified = inner, 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return self.inner.verify(password_hash, password)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_unknown_waiting_and_turned_off_accounts_answer_alike_after_the_same_work(rt, app, monkeypatch):
    add_caseworker(rt)
    add_caseworker(rt, email="off@example.org", name="Off")
    with rt.db.transaction() as s:
        s.scalar(select(Caseworker).where(Caseworker.email == "off@example.org")).active = False
    counting = CountingHasher(auth.hasher)
    monkeypatch.setattr(auth, "hasher", counting)

    def replay(email: str, address: str) -> list[tuple[int, str]]:
        """The right password (for real accounts), five wrong ones, then two more tries while waiting."""
        staff, answers = Staff(from_address(app, address)), []
        for password in [PASSWORD if email != "ana@example.org" else "wrong", *(f"wrong {i}" for i in range(7))]:
            before = counting.verified
            resp = staff.login(email=email, password=password)
            assert counting.verified - before == 1, f"argon2 ran once for {email}"
            page = resp.get_data(as_text=True)
            answers.append((resp.status_code, re.search(r'role="alert">([^<]*)<', page).group(1)))
        return answers

    unknown = replay("nobody@example.org", "192.0.2.1")
    turned_off = replay("off@example.org", "192.0.2.2")
    real = replay("ana@example.org", "192.0.2.3")  # locked by its own failures, like the others
    assert unknown == turned_off == real
    assert [status for status, _ in real] == [401] * 5 + [429] * 3
    assert all(auth.WRONG in words for _, words in real[:5]) and "Too many wrong tries" in real[5][1]


def test_peaceline_unlock_clears_the_counts_and_is_audited(env, rt, app):
    ana = add_caseworker(rt)
    for i in range(lockout.FREE_TRIES):
        Staff(from_address(app, ATTACKER)).login(password=f"wrong {i}")
    assert Staff(from_address(app, ATTACKER)).login().status_code == 429
    result = CliRunner().invoke(main, ["unlock", "ANA@example.org"], env=env)
    assert result.exit_code == 0 and "unlocked (1 place(s) had wrong tries)" in result.output
    with rt.db.sessions() as s:
        assert s.scalar(select(func.count(LoginFailure.id))) == 0
    assert audits(rt, "auth.unlocked")[-1].detail == {"caseworker": ana, "via": "cli", "clients": 1}
    assert Staff(from_address(app, ATTACKER)).login().status_code == 302
    missing = CliRunner().invoke(main, ["unlock", "nobody@example.org"], env=env)
    assert missing.exit_code == 1 and "no account for nobody@example.org" in missing.output


def test_the_lockout_table_holds_no_email_and_no_address(rt, app):
    add_caseworker(rt)
    Staff(from_address(app, ATTACKER)).login(password="wrong password")
    with rt.db.sessions() as s:
        (row,) = s.scalars(select(LoginFailure))
    assert "ana" not in row.account_key and ATTACKER not in row.client_key and len(row.account_key) == 64
