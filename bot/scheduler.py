"""The tick: APScheduler runs dispatch in exactly one process."""
from __future__ import annotations

import logging

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from . import logs
from .dispatch import dispatch_due

log = logging.getLogger(__name__)


def tick(app: Flask) -> None:
    try:
        done = dispatch_due(app.extensions["peaceline"])
    except Exception:  # one bad tick must not stop the scheduler; the next one retries
        log.exception("dispatch tick failed")
        return
    if done:
        logs.event("dispatch.tick", handled=len(done))


def run_forever(app: Flask, interval: int = 5) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(tick, "interval", seconds=interval, args=[app], max_instances=1, coalesce=True,
                      id="dispatch")
    logs.event("scheduler.started", interval=interval)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
