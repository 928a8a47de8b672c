"""A stand-in for the network under the real twilio client: an injected `HttpClient` that plays a script."""

from __future__ import annotations

import json
import logging

from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "1" * 32


def created(sid: str = "SM" + "a" * 32, status: str = "queued") -> tuple[int, dict]:
    return 201, {"sid": sid, "status": status, "account_sid": ACCOUNT_SID, "body": "x", "num_segments": "1"}


def error(status: int, code: int) -> tuple[int, dict]:
    return status, {"code": code, "message": f"error {code}", "status": status, "more_info": ""}


class ScriptedTwilio(HttpClient):
    """Answers each request with the next step: a (status, json) pair or an exception to raise.

    Every request is counted, scripted or not: once the script runs out it answers 201, so a
    send nobody expected shows up in `calls` instead of failing somewhere else.
    """

    def __init__(self, *steps) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), is_async=False, timeout=10)
        self.steps, self.calls = list(steps), []

    def request(
        self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        self.calls.append({"method": method, "url": uri, "data": dict(data or {})})
        step = self.steps.pop(0) if self.steps else created("SM" + f"{len(self.calls):032d}")
        if isinstance(step, Exception):
            raise step
        status, body = step
        return Response(status, json.dumps(body))

    @property
    def sent_to(self) -> list[str]:
        return [c["data"].get("To") for c in self.calls]
