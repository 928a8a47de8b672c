"""The baseline for benchmarks/webhook.py: a bare Flask app that answers POST /sms with fixed TwiML.

No signature check, no database, no conversation: what Flask + gunicorn alone cost on this
machine, measured in the same run and with the same load as the real app.

    gunicorn -w 2 -b 127.0.0.1:8001 bare_app:app      # from benchmarks/
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
    "Hi, this is the Northeast Help Line. What do you need help with?</Message></Response>"
)

app = Flask(__name__)


@app.post("/sms")
def sms() -> Response:
    return Response(TWIML, mimetype="text/xml")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
