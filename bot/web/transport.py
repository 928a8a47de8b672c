"""HTTPS: Secure cookies and HSTS whenever the line is reached over HTTPS; the security headers of every page.

Over HTTPS means PUBLIC_BASE_URL is https, or this request came over TLS: directly, or through
TRUSTED_PROXIES hops whose X-Forwarded-Proto ProxyFix believes (a client's own header is not).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours to pin
# The pages hold residents' words: no framing, only this site's own scripts (no inline script or style).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def security_headers(referrer_policy: str) -> Callable[[Response], Response]:
    """A blueprint's after-request hook: SECURITY_HEADERS, its Referrer-Policy, and no caching of
    anything but its static files (the back button after logout, or on a shared phone, shows nothing)."""

    def add(resp: Response) -> Response:
        resp.headers.update(SECURITY_HEADERS)
        resp.headers["Referrer-Policy"] = referrer_policy
        if not (request.endpoint or "").endswith("static"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    return add


def _https_base(app: Flask) -> bool:
    return bool(app.config.get("PUBLIC_BASE_URL", "").startswith("https://"))


def over_https(app: Flask) -> bool:
    return _https_base(app) or (has_request_context() and request.is_secure)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag decided per request."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or over_https(app)


def install(app: Flask, public_base_url: str | None) -> None:
    app.config["PUBLIC_BASE_URL"] = public_base_url or ""
    app.session_interface = SessionInterface()

    @app.after_request
    def strict_transport(resp: Response) -> Response:
        if over_https(app):
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        return resp
