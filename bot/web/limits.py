"""Request rate limits (Flask-Limiter), shared by the public and staff blueprints.

Counters live where RATELIMIT_STORAGE_URI says: `memory://` is per process, so
several workers each count on their own; point it at Redis to count across them.
"""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from bot.config import Settings

# The client address as ProxyFix sees it (TRUSTED_PROXIES hops), never a raw X-Forwarded-For.
limiter = Limiter(key_func=get_remote_address)


def init_app(app: Flask, settings: Settings) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", settings.ratelimit_storage_uri)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
