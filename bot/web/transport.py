"""HTTPS: Secure cookies and HSTS whenever the line is reached over HTTPS.

Over HTTPS means PUBLIC_BASE_URL is https, or this request came over TLS: directly, or through
TRUSTED_PROXIES hops whose X-Forwarded-Proto ProxyFix believes (a client's own header is not).
"""

from __future__ import annotations

from flask import Flask, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours to pin


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
