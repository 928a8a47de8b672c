"""The Flask app factory: the runtime, then each channel and page as a blueprint."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import golive, logs
from bot.clock import Clock
from bot.config import Settings, load_settings
from bot.messaging import notify
from bot.messaging.outbound import Sender
from bot.runtime import Runtime
from bot.web import auth, chat, health, inbox, limits, reports, sms, transport
from bot.web.context import after_response


def create_app(settings: Settings | None = None, *, clock: Clock | None = None, sender: Sender | None = None) -> Flask:
    """Build the app. Never starts the scheduler or opens a database connection by itself."""
    settings = settings or load_settings()
    logs.configure()
    app = Flask("bot", instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    transport.install(app, settings.public_base_url)  # Secure cookies and HSTS over HTTPS
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    app.extensions["peaceline"] = rt = Runtime.build(settings, clock, sender)
    golive.enforce(rt)

    limits.init_app(app, settings)
    csrf = auth.init_app(app)  # login, sessions, CSRF on every form
    csrf.exempt(sms.bp)  # Twilio signs these requests instead
    csrf.exempt(chat.bp)  # same-origin JSON only: the chat's own CSRF defence
    for blueprint in (sms.bp, health.bp, chat.bp, inbox.bp, reports.bp):
        app.register_blueprint(blueprint)
    notify.install(app.extensions["peaceline"], later=after_response)
    return app
