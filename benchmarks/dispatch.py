"""Follow-up dispatch at the channel's rate, under real latency: one scheduler process, a fake Twilio.

A fake Twilio REST server runs on loopback in a process of its own (one asyncio loop): it
answers the Messages create call after 150 ms, and with 429 at once when texts come faster than
its rate (a token bucket at 100 a second holding 25: a quarter second of slack for a loaded
machine's jitter; the sender's own bucket saves up one token, no burst). The sender is a short code, so
SENDER_MPS and SEND_CONCURRENCY keep their defaults for one (100 a second, 30 at once). One scheduler process
builds the app as `peaceline scheduler` would, with the real twilio client pointed at the fake
server, and runs one dispatch pass over the due follow-ups. Every follow-up must go out exactly
once: one request to the server per resident, one stored message per follow-up, linked from it,
status `sent`. From the repo root:

    python benchmarks/dispatch.py [--followups 3000] [--only postgresql,sqlite] [--latency 0.15] [--concurrency N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bot.storage.db import scratch_database  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Tuesday 1 Dec 2026, 10:00 in Kansas City: inside the sending window.
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
SHORT_CODE = "72345"
ACCOUNT_SID = "AC" + "b" * 32
TWILIO_API = "https://api.twilio.com"


# -- the fake Twilio ---------------------------------------------------------------------------------


class FakeTwilio:
    """Messages create: 201 after `latency` seconds, or 429 at once when the sender is over its rate.
    One asyncio loop in a process of its own, so each request is judged the moment it arrives
    (a thread per connection would judge it whenever its thread got the GIL)."""

    def __init__(self, rate: float, latency: float) -> None:
        self.rate, self.latency = rate, latency
        self.reset()

    def reset(self) -> None:
        self.limiter = Limiter(self.rate, burst=max(1.0, self.rate / 4))
        self.to: Counter[str] = Counter()
        self.too_many = 0
        self.first = self.last = 0.0  # when the first and the last text were taken

    def stats(self) -> dict:
        counts = self.to.values()
        return {
            "requests": sum(counts),
            "to": len(counts),
            "twice": sum(n > 1 for n in counts),
            "429": self.too_many,
            "sustained": (sum(counts) - 1) / (self.last - self.first) if self.last > self.first else 0,
        }

    async def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if method == "GET":  # the benchmark's own: what the fake saw, and a fresh start
            seen = self.stats()
            if path == "/reset":
                self.reset()
            return 200, seen
        if not path.endswith("/Messages.json"):
            return 404, {"code": 20404, "message": "not found", "status": 404}
        if not self.limiter.admit():
            self.too_many += 1
            return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}
        self.first, self.last = self.first or time.monotonic(), time.monotonic()
        to = parse_qs(body.decode())["To"][0]
        await asyncio.sleep(self.latency)
        self.to[to] += 1
        return 201, {"sid": f"SM{sum(self.to.values()):032x}", "status": "queued", "account_sid": ACCOUNT_SID, "to": to}

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive, as api.twilio.com; one write per answer."""
        try:
            while line := await reader.readline():
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, answer = await self.answer(method, path, body)
                data = json.dumps(answer).encode()
                head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                writer.write(head.encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class Limiter:
    """A carrier's limit: `rate` texts a second, with `burst` (a quarter second's) of slack for jitter."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def admit(self) -> bool:
        now = time.monotonic()
        self.tokens, self.stamp = min(self.burst, self.tokens + (now - self.stamp) * self.rate), now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def serve(rate: float, latency: float, port_out) -> None:
    async def main() -> None:
        fake = FakeTwilio(rate, latency)
        server = await asyncio.start_server(fake.connection, "127.0.0.1", 0, backlog=128)
        port_out.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


# -- the database ----------------------------------------------------------------------------------


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


def verify(database_url: str, count: int, status: str = "sent", message_status: str = "queued") -> dict:
    """Each follow-up sent exactly once: one message per follow-up, linked, with the expected statuses."""
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
        statuses == {status: count}
        and msg_statuses == {message_status: count}
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


# -- the scheduler process -------------------------------------------------------------------------


def app_env(database_url: str, instance: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "DATABASE_URL", "RESOURCES_PATH", "FLOWS_DIR", "PEACELINE_", "SEND"))
    }
    env.update(
        DATABASE_URL=database_url,
        PEACELINE_INSTANCE=str(instance),
        SECRET_KEY="bench-secret-key",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN="bench-token",
        TWILIO_FROM_NUMBER=SHORT_CODE,
    )
    return env


def loopback_client(base: str, connections: int):
    """The twilio library's own HTTP client, its requests sent to `base` instead of api.twilio.com."""
    from requests.adapters import HTTPAdapter

    from bot.messaging.outbound import pooled_http_client

    client = pooled_http_client(connections)
    client.session.mount("http://", HTTPAdapter(pool_maxsize=connections))
    send = client.request

    def request(method, url, *args, **kwargs):
        return send(method, url.replace(TWILIO_API, base), *args, **kwargs)

    client.request = request
    return client


def scheduler(env: dict[str, str], base: str, now: datetime, results, log_path: str) -> None:
    """Build the app as `peaceline scheduler` does, then one dispatch pass over everything due."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)  # the app's structured log lines go to a file, as in production
    os.environ.clear()
    os.environ.update(env)
    from bot import create_app
    from bot.config import load_settings
    from bot.messaging.dispatch import dispatch_due
    from bot.messaging.outbound import TwilioSender

    settings = load_settings()
    sender = TwilioSender(settings, http_client=loopback_client(base, settings.send_concurrency))
    rt = create_app(settings, sender=sender).extensions["peaceline"]
    started, cpu = time.perf_counter(), time.process_time()
    done = dispatch_due(rt, now)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    rt.db.dispose()
    results.put(
        {
            "elapsed": elapsed,
            "cpu_ms": 1000 * cpu / max(1, len(done)),
            "handled": len(done),
            "mps": settings.sender_mps,
            "concurrency": settings.send_concurrency,
        }
    )


def fake_stats(base: str, reset: bool = False) -> dict:
    import requests

    return requests.get(f"{base}/{'reset' if reset else 'stats'}", timeout=5).json()


def run(database_url: str, count: int, base: str, work: Path, concurrency: int | None = None) -> dict:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    fake_stats(base, reset=True)
    env = app_env(database_url, work / "instance")
    if concurrency:
        env["SEND_CONCURRENCY"] = str(concurrency)
    proc = ctx.Process(target=scheduler, args=(env, base, NOW, results, str(work / "scheduler.log")))
    proc.start()
    out = results.get(timeout=1800)
    proc.join(timeout=60)
    if proc.exitcode != 0:
        raise RuntimeError(f"the scheduler exited with {proc.exitcode}: see {work}")
    seen = fake_stats(base)
    checked = verify(database_url, count)
    once = checked["ok"] and seen["requests"] == count and seen["to"] == count and seen["twice"] == 0
    return {**out, "fake": seen, **checked, "ok": once}


@contextmanager
def sqlite_database(work: Path):
    yield f"sqlite:///{work / 'dispatch.db'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followups", type=int, default=3000)
    parser.add_argument("--only", default="postgresql,sqlite")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds the fake Twilio takes to answer")
    parser.add_argument("--limit", type=float, default=100, help="the fake Twilio's rate, texts a second")
    parser.add_argument("--concurrency", type=int, help="SEND_CONCURRENCY (default: the short code's default)")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL))
    args = parser.parse_args()
    from bot.storage.migrate import upgrade

    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=serve, args=(args.limit, args.latency, ports), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ports.get(timeout=30)}"
    rows, failed = [], False
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr, flush=True)
    try:
        for db in args.only.split(","):
            work = Path(tempfile.mkdtemp(prefix="peaceline-dispatch-"))
            try:
                with (
                    scratch_database(args.pg_admin_url, "peaceline_dispatch")
                    if db == "postgresql"
                    else sqlite_database(work) as url
                ):
                    upgrade(url)
                    seed(url, args.followups)
                    r = run(url, args.followups, base, work, args.concurrency)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rate = r["handled"] / r["elapsed"]
            print(
                f"  {db}: {r['elapsed']:.2f} s, {rate:,.1f}/s ({r['fake']['sustained']:.1f}/s at Twilio) "
                f"at SENDER_MPS {r['mps']:g}, "
                f"SEND_CONCURRENCY {r['concurrency']}, 429s {r['fake']['429']}, "
                f"CPU {r['cpu_ms']:.2f} ms a follow-up, exactly once {r['ok']}",
                file=sys.stderr,
                flush=True,
            )
            if not r["ok"] or r["fake"]["429"]:
                failed = True
                print(f"  NOT clean: {r}", file=sys.stderr)
            rows.append((db, r, rate))
    finally:
        server.terminate()
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {args.followups:,} due follow-ups, one scheduler process, fake Twilio "
        f"answering in {args.latency * 1000:.0f} ms and limiting to {args.limit:g}/s, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}\n"
    )
    print(
        "| db | sender | SENDER_MPS | SEND_CONCURRENCY | seconds | follow-ups/s: whole pass | at Twilio, sustained | "
        "channel limit | 429s | CPU/follow-up | sent exactly once |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for db, r, rate in rows:
        print(
            f"| {db} | short code | {r['mps']:g} | {r['concurrency']} | {r['elapsed']:.2f} | {rate:,.1f} | "
            f"{r['fake']['sustained']:.1f} | {args.limit:g}/s | {r['fake']['429']} | "
            f"{r['cpu_ms']:.2f} ms | {'yes' if r['ok'] else 'NO'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
