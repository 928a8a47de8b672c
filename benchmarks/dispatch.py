"""Follow-up dispatch throughput: 10,000 due follow-ups, four dispatcher processes on PostgreSQL.

Each dispatcher is its own process that builds the app as `peaceline scheduler` would (the
log sender: no Twilio account) and calls `bot.messaging.dispatch.dispatch_due` until it finds nothing
left. Every follow-up must go out exactly once: one stored message per follow-up, linked from
it, status `logged`. For comparison, the same on SQLite with one process. From the repo root:

    python benchmarks/dispatch.py [--followups 10000] [--processes 4] [--only postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bot.storage.db import scratch_database  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Tuesday 1 Dec 2026, 10:00 in Kansas City: inside the sending window.
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def app_env(database_url: str, instance: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "DATABASE_URL", "RESOURCES_PATH", "FLOWS_DIR", "PEACELINE_"))
    }
    env.update(DATABASE_URL=database_url, PEACELINE_INSTANCE=str(instance), SECRET_KEY="bench-secret-key")
    return env


def seed(database_url: str, count: int, now: datetime = NOW) -> None:
    """`count` residents, each with one check-in due an hour ago (a third in Spanish)."""
    from sqlalchemy import insert, select

    from bot.storage.db import Database
    from bot.storage.models import FollowUp, Resident

    db = Database(database_url)
    due = now - timedelta(hours=1)
    with db.transaction() as s:
        s.execute(
            insert(Resident),
            [
                {
                    "phone": f"+1816{200 + i // 10_000}{i % 10_000:04d}",
                    "channel": "sms",
                    "created_at": due,
                    "language": "es" if i % 3 == 0 else "en",
                    "timezone": "America/Chicago",
                }
                for i in range(count)
            ],
        )
        ids = list(s.scalars(select(Resident.id).order_by(Resident.id)))
        s.execute(
            insert(FollowUp),
            [
                {
                    "resident_id": rid,
                    "template": "checkin",
                    "due_at": due,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": due,
                }
                for rid in ids
            ],
        )
    db.dispose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving this database's connections."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                    {"db": make_url(database_url).database},
                ).scalars()
            )
    finally:
        engine.dispose()


def dispatcher(env: dict[str, str], now: datetime, ready, go, results, log_path: str, release) -> None:
    """One dispatcher process: build the app, wait for the start, dispatch until nothing is left."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)  # the app's structured log lines (three a follow-up) go to a file, as in production
    os.environ.clear()
    os.environ.update(env)
    from bot import create_app
    from bot.messaging.dispatch import dispatch_due

    app = create_app()
    rt = app.extensions["peaceline"]
    assert rt.outbound.sender.name == "log"
    ready.put(os.getpid())
    go.wait()
    started, cpu, handled, passes = time.perf_counter(), time.process_time(), 0, 0
    while True:
        done = dispatch_due(rt, now)
        passes += 1
        handled += len(done)
        if not done:
            break
    results.put((os.getpid(), handled, passes, started, time.perf_counter(), time.process_time() - cpu))
    release.wait(60)  # keep the connections open while the parent reads their server processes' CPU
    rt.db.dispose()


def run(database_url: str, processes: int, count: int, work: Path, now: datetime = NOW) -> dict:
    ctx = mp.get_context("spawn")
    ready, results, go, release = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    env = app_env(database_url, work / "instance")
    procs = [
        ctx.Process(target=dispatcher, args=(env, now, ready, go, results, str(work / f"dispatch-{i}.log"), release))
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    postgres = database_url.startswith("postgresql")
    backends = {pid: cpu_seconds(pid) for pid in backend_pids(database_url)} if postgres else {}
    t0 = time.perf_counter()
    go.set()
    out = [results.get(timeout=600) for _ in procs]
    elapsed = max(r[4] for r in out) - t0
    db_cpu = 0.0
    for pid in backend_pids(database_url) if postgres else []:
        with suppress(OSError):
            db_cpu += cpu_seconds(pid) - backends.get(pid, 0.0)
    release.set()
    for p in procs:
        p.join(timeout=30)
        if p.exitcode != 0:
            raise RuntimeError(f"a dispatcher exited with {p.exitcode}: see {work}")
    return {
        "elapsed": elapsed,
        "per_process": [r[1] for r in out],
        "passes": [r[2] for r in out],
        "app_cpu_ms": 1000 * sum(r[5] for r in out) / count,
        "db_cpu_ms": 1000 * db_cpu / count,
        "handled": sum(r[1] for r in out),
        **verify(database_url, count),
    }


def verify(database_url: str, count: int) -> dict:
    """Each follow-up sent exactly once: one message per follow-up, linked, status logged."""
    from sqlalchemy import func, select

    from bot.storage.db import Database
    from bot.storage.models import FollowUp, Message

    db = Database(database_url)
    with db.sessions() as s:
        statuses = dict(s.execute(select(FollowUp.status, func.count()).group_by(FollowUp.status)).all())
        msg_statuses = dict(
            s.execute(
                select(Message.status, func.count()).where(Message.kind == "followup").group_by(Message.status)
            ).all()
        )
        per_resident = s.execute(
            select(func.count()).select_from(
                select(Message.resident_id)
                .where(Message.kind == "followup")
                .group_by(Message.resident_id)
                .having(func.count() != 1)
                .subquery()
            )
        ).scalar_one()
        linked = s.execute(select(func.count(func.distinct(FollowUp.message_id)))).scalar_one()
        attempts = dict(s.execute(select(FollowUp.attempts, func.count()).group_by(FollowUp.attempts)).all())
    db.dispose()
    ok = (
        statuses == {"logged": count}
        and msg_statuses == {"logged": count}
        and per_resident == 0
        and linked == count
        and attempts == {1: count}
    )
    return {
        "ok": ok,
        "followup_statuses": statuses,
        "message_statuses": msg_statuses,
        "residents_without_exactly_one": per_resident,
        "distinct_linked_messages": linked,
        "attempts": attempts,
    }


@contextmanager
def sqlite_database(work: Path):
    yield f"sqlite:///{work / 'dispatch.db'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followups", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--only", default="postgresql,sqlite")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL))
    args = parser.parse_args()
    from bot.storage.migrate import upgrade

    rows, failed = [], False
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    for db in args.only.split(","):
        procs = args.processes if db == "postgresql" else 1
        work = Path(tempfile.mkdtemp(prefix="peaceline-dispatch-"))
        try:
            with (
                scratch_database(args.pg_admin_url, "peaceline_dispatch")
                if db == "postgresql"
                else sqlite_database(work) as url
            ):
                upgrade(url)
                seed(url, args.followups)
                r = run(url, procs, args.followups, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rate = args.followups / r["elapsed"]
        print(
            f"  {db}: {procs} process(es), {r['elapsed']:.2f} s, {rate:,.0f}/s, per process {r['per_process']}, "
            f"CPU per follow-up: dispatchers {r['app_cpu_ms']:.2f} ms, database server {r['db_cpu_ms']:.2f} ms, "
            f"verified {r['ok']}",
            file=sys.stderr,
            flush=True,
        )
        if not r["ok"]:
            failed = True
            print(f"  NOT exactly once: {r}", file=sys.stderr)
        rows.append((db, procs, r, rate))
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {args.followups:,} due follow-ups, log sender, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}\n"
    )
    print(
        "| db | dispatcher processes | follow-ups | seconds | follow-ups/s | CPU/follow-up: dispatchers | "
        "CPU/follow-up: db server | sent exactly once (1 message each, `logged`) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for db, procs, r, rate in rows:
        split = "/".join(str(n) for n in r["per_process"])
        server = f"{r['db_cpu_ms']:.2f} ms" if db == "postgresql" else "(in process)"
        print(
            f"| {db} | {procs} | {r['handled']:,} ({split}) | {r['elapsed']:.2f} | {rate:,.0f} | "
            f"{r['app_cpu_ms']:.2f} ms | {server} | {'yes' if r['ok'] else 'NO'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
