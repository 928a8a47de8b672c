"""The tick: APScheduler runs dispatch in exactly one process."""

from __future__ import annotations

import contextlib
import logging

from apscheduler.schedulers.blocking import BlockingScheduler

from bot import logs
from bot.messaging.dispatch import dispatch_due
from bot.messaging.notify import escalate_overdue
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def tick(rt: Runtime) -> None:
    try:
        done = dispatch_due(rt)
    except Exception:  # one bad tick must not stop the scheduler; the next one retries
        log.exception("dispatch tick failed")
    else:
        if done:
            logs.event("dispatch.tick", handled=len(done))
    try:  # apart from dispatch, so a failing send cannot hold back an escalation
        escalated = escalate_overdue(rt, rt.clock.now())
    except Exception:
        log.exception("escalation check failed")
    else:
        if escalated:
            logs.event("escalation.tick", escalated=len(escalated))


def run_forever(rt: Runtime, interval: int = 5) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(tick, "interval", seconds=interval, args=[rt], max_instances=1, coalesce=True, id="dispatch")
    logs.event("scheduler.started", interval=interval)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
