"""peaceline: an SMS and web-chat referral line."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import logs
from .clock import Clock
from .config import Settings, load_settings
from .outbound import Sender


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               sender: Sender | None = None) -> Flask:
    """The app factory. Never starts the scheduler or opens a connection by itself."""
    from .runtime import Runtime  # heavy imports (flows, directory) only when an app is made

    settings = settings or load_settings()
    logs.configure()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(SECRET_KEY=settings.secret_key, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=bool(settings.public_base_url
                                                 and settings.public_base_url.startswith("https://")),
                      MAX_CONTENT_LENGTH=256 * 1024)
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    app.extensions["peaceline"] = Runtime.build(settings, clock, sender)

    from .channels import sms
    from . import health

    app.register_blueprint(sms.bp)
    app.register_blueprint(health.bp)
    return app
