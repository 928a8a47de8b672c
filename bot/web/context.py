"""The web side's view of the process: the app's Runtime, and work deferred past the response."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, after_this_request, current_app, has_request_context

from bot.messaging.notify import run_now
from bot.runtime import Runtime


def runtime() -> Runtime:
    """The runtime of the current Flask app."""
    return current_app.extensions["peaceline"]


def after_response(job: Callable[[], object]) -> None:
    """Run `job` once the response has gone out (a slow SMS API must not hold back the
    resident's reply, which may be a crisis answer); outside a request, run it now."""
    if not has_request_context():
        run_now(job)
        return

    @after_this_request
    def _later(response: Response) -> Response:
        response.call_on_close(lambda: run_now(job))
        return response
