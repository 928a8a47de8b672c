"""The Flask app factory: the runtime, then each channel and page as a blueprint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import golive, logs
from bot.clock import Clock
from bot.config import Settings, load_settings
from bot.messaging import notify
from bot.messaging.outbound import Sender
from bot.runtime import Runtime
from bot.web import auth, canvass, chat, health, inbox, limits, reports, sms, transport
from bot.web.context import after_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MAX_BODY = 256 * 1024  # a request body larger than any form or webhook the line takes


def create_app(settings: Settings | None = None, *, clock: Clock | None = None, sender: Sender | None = None) -> Flask:
    """Build the app. Never starts the scheduler or opens a database connection by itself."""
    settings = settings or load_settings()
    logs.configure()
    app = Flask("bot", instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_BODY,
    )
    transport.install(app, settings.public_base_url)  # Secure cookies and HSTS over HTTPS
    app.extensions["peaceline"] = rt = Runtime.build(settings, clock, sender)
    golive.enforce(rt)

    limits.init_app(app, settings)
    csrf = auth.init_app(app)  # login, sessions, CSRF on every form
    csrf.exempt(chat.bp)  # same-origin JSON only: the chat's own CSRF defence
    for blueprint in (health.bp, chat.bp, inbox.bp, reports.bp, canvass.bp):
        app.register_blueprint(blueprint)
    notify.install(rt, later=after_response)
    twilio = _twilio_app(settings, rt)
    app.extensions["peaceline.twilio"] = twilio
    app.wsgi_app = _ByPath(app.wsgi_app, twilio.wsgi_app, sms.PATHS)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    return app


def _twilio_app(settings: Settings, rt: Runtime) -> Flask:
    """Twilio's webhook and status callback as an app of their own. Signed requests from a server use
    none of the pages' sessions, CSRF tokens, logins, per-address limits or security headers, so they
    skip their cost on every text (the signature is their guard: web/sms.py)."""
    app = Flask("bot", instance_path=str(settings.instance_path))
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY)
    app.extensions["peaceline"] = rt
    app.register_blueprint(sms.bp)
    return app


class _ByPath:
    """Sends the requests for `paths` to `special`, every other one to `default` (two WSGI apps)."""

    def __init__(self, default: WSGIApplication, special: WSGIApplication, paths: frozenset[str]) -> None:
        self.default, self.special, self.paths = default, special, paths

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = self.special if environ.get("PATH_INFO") in self.paths else self.default
        return target(environ, start_response)
