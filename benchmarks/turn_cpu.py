"""CPU time per text in process: the webhook benchmark's conversations through the WSGI app, no HTTP server.

Where `benchmarks/webhook.py` measures the whole server under load, this measures what one text costs
the worker's own thread (`time.thread_time`), so a change to the turn can be weighed on a busy machine
too. Signed requests from `webhook.py`'s conversations (first texts, menus, needs, hand-offs) go to
the app built by `create_app`, with INFO logging off; the first `--warmup` requests are not counted.
It prints CPU time per text overall and by path: Core (`Service._fast_turn`) or the ORM.

    python benchmarks/turn_cpu.py [--residents 400] [--turns 20] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from webhook import PG_ADMIN_URL, app_env, signed_requests  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from bot.storage.db import scratch_database  # noqa: E402


def environs(residents: int, turns: int) -> list[dict]:
    """One WSGI environ per signed request, built before anything is timed."""
    return [
        EnvironBuilder(
            path="/sms",
            method="POST",
            base_url="http://127.0.0.1/",
            data=urlencode(params),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": signature},
        ).get_environ()
        for signature, params in signed_requests(residents=residents, turns=turns)
    ]


def measure(app, envs: list[dict], warmup: int) -> dict[str, list[float]]:
    """CPU seconds of each counted text, by the path it took."""
    from bot.messaging.service import Service

    core = Service._fast_turn
    took: list[str] = []

    def watched(self, *args, **kwargs):
        result = core(self, *args, **kwargs)
        took.append("core" if result is not None else "orm")
        return result

    Service._fast_turn = watched  # type: ignore[method-assign]
    statuses: list[str] = []
    times: dict[str, list[float]] = {"core": [], "orm": []}
    try:
        for i, environ in enumerate(envs):
            took.clear()
            start = time.thread_time()
            b"".join(app(dict(environ), lambda status, _headers, _exc=None: statuses.append(status)))
            spent = time.thread_time() - start
            if i >= warmup:
                times[took[0] if took else "orm"].append(spent)
    finally:
        Service._fast_turn = core  # type: ignore[method-assign]
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        raise SystemExit(f"{len(bad)} requests failed, first: {bad[0]}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=400)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=800)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL))
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/turn.db"
        else:
            url = stack.enter_context(scratch_database(args.pg_admin_url, "peaceline_turn_cpu"))
        os.environ.update(app_env(url, tmp / "instance"))
        subprocess.run([sys.executable, "-m", "bot", "init-db"], cwd=ROOT, env=os.environ, check=True)
        from bot.app import create_app

        app = create_app()
        logging.getLogger().setLevel(logging.WARNING)
        envs = environs(args.residents, args.turns)
        times = measure(app, envs, args.warmup)
        app.extensions["peaceline"].db.dispose()
    every = times["core"] + times["orm"]
    print(f"{args.db}: {len(every)} texts, {sum(every) * 1000 / len(every):.2f} ms CPU a text")
    for path, spent in times.items():
        if spent:
            share = len(spent) / len(every)
            print(f"  {path}: {len(spent)} texts ({share:.0%}), {sum(spent) * 1000 / len(spent):.2f} ms a text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
