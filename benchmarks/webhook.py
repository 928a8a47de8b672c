"""Webhook throughput and latency: the real app under gunicorn against a bare Flask baseline.

In one run, with the same settings and the same load from wrk (16 connections, pre-signed
requests cycling through real conversations of 2,000 residents, every MessageSid new):

  * SQLite (a fresh file) and PostgreSQL (a fresh database, dropped after): the real app
    (`gunicorn -w 2 wsgi:app`) and the bare Flask app (`benchmarks/bare_app.py`);
  * the real app again with a synthetic 10,000-service directory (RESOURCES_PATH), for the
    memory per worker.

It prints one markdown table: requests/s, p50, p99, non-2xx, RSS per worker (VmRSS of the
gunicorn workers after the load), the workers' CPU time per request and the ratio app/bare.
Everything talks to 127.0.0.1 only. Needs wrk (`apt-get install -y wrk`). From the repo root:

    python benchmarks/webhook.py [--duration 15] [--connections 16] [--only sqlite,postgresql,10k]
    python benchmarks/webhook.py --only sqlite,postgresql --profile    # + where the workers' time goes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from minimal_app import create_tables as create_minimal_tables  # noqa: E402

from bot.storage.db import scratch_database  # noqa: E402

TOKEN = "bench-auth-token-0123456789abcdef"
BASE_URL = "https://peaceline.example.org"
PROGRAM_NUMBER = "+18165550100"
ACCOUNT_SID = "AC" + "0" * 32
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LUA = HERE / "webhook.lua"

# -- the load: real conversations --------------------------------------------------------------
# Each resident opens with one of FIRST (greeting or a need named outright, then the ZIP and the
# closing questions), then goes round LATER (MENU and another need; the ZIP is remembered), from
# an offset of its own. Checked against the flows: see tests/test_benchmarks_smoke.py.
FIRST = {
    "en": [
        ["hi", "2", "64124", "no", "yes"],
        ["I need food", "64124", "no", "no"],
        ["i got evicted", "64124", "yes", "no", "yes"],
        ["Hi", "4", "64123", "no", "no"],
    ],
    "es": [["hola", "3", "64120", "2", "no", "si"], ["necesito comida", "64124", "no", "si"]],
}
LATER = {
    "en": [
        ["MENU", "1", "yes", "no", "no"],
        ["MENU", "4", "no", "yes"],
        ["MENU", "3", "1", "yes"],  # asks for a person: a hand-off, until the next MENU
        ["MENU", "5", "no", "no"],
        ["menu", "7", "ok thanks"],
        ["MENU", "2", "no", "yes"],
    ],
    "es": [
        ["MENU", "1", "si", "no", "no"],
        ["MENU", "2", "no", "si"],
        ["MENU", "3", "2", "no", "no"],
        ["menu", "7", "gracias"],
    ],
}


def conversation(resident: int, turns: int) -> list[str]:
    """The texts one resident sends, in order."""
    rng = random.Random(resident)
    lang = "es" if resident % 10 < 3 else "en"
    texts = list(rng.choice(FIRST[lang]))
    later, k = LATER[lang], rng.randrange(len(LATER[lang]))
    while len(texts) < turns:
        texts += later[k % len(later)]
        k += 1
    return texts[:turns]


def phone_number(resident: int, block: int = 0) -> str:
    return f"+1816{555 + block}{resident:04d}"


def payload(phone: str, body: str, sid: str) -> dict[str, str]:
    """Every field Twilio posts for an inbound SMS."""
    return {
        "ToCountry": "US",
        "ToState": "MO",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "KANSAS CITY",
        "FromZip": "64124",
        "SmsSid": sid,
        "FromState": "MO",
        "SmsStatus": "received",
        "FromCity": "KANSAS CITY",
        "Body": body,
        "FromCountry": "US",
        "To": PROGRAM_NUMBER,
        "ToZip": "64106",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": phone,
        "ApiVersion": "2010-04-01",
    }


def signed_requests(
    residents: int = 2000, turns: int = 20, token: str = TOKEN, base_url: str = BASE_URL, block: int = 0
) -> list[tuple[str, dict[str, str]]]:
    """(X-Twilio-Signature, form) for every turn, turn by turn across residents, so one resident's
    texts arrive in order and far apart. Every MessageSid is new."""
    validator, url = RequestValidator(token), base_url.rstrip("/") + "/sms"
    scripts = [conversation(r, turns) for r in range(residents)]
    out = []
    for turn in range(turns):
        for r, script in enumerate(scripts):
            params = payload(phone_number(r, block), script[turn], "SM" + uuid.uuid4().hex)
            out.append((validator.compute_signature(url, params), params))
    return out


def write_requests(path: Path, requests: list[tuple[str, dict[str, str]]]) -> Path:
    """One request a line for webhook.lua: signature, a tab, the form-encoded body."""
    with path.open("w") as f:
        for signature, params in requests:
            f.write(f"{signature}\t{urlencode(params)}\n")
    return path


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def memory_mb(pid: int) -> tuple[float, float]:
    """(USS, PSS) of a process in MB from /proc/PID/smaps_rollup: USS is the memory no other process
    shares (private pages), PSS adds its share of the pages it shares with the other workers."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024, fields["Pss"] / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def workers(self) -> list[int]:
        return children(self.proc.pid)


def gunicorn_cmd(target: str, port: int, workers: int) -> list[str]:
    """`gunicorn -w N` for the baselines (from benchmarks/)."""
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", target]
    if int(metadata.version("gunicorn").split(".")[0]) >= 27:
        cmd.insert(3, "--no-control-socket")  # its one shared ~/.gunicorn socket would clash with other servers
    return cmd


def serve_cmd(port: int, workers: int) -> list[str]:
    """The project as operators run it: `peaceline serve` (gunicorn, app preloaded, gc.freeze() before
    the fork), web workers only; the scheduler is not what this measures."""
    return [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)] + [
        "--workers",
        str(workers),
        "--no-scheduler",
    ]


@contextmanager
def server(target: str, cwd: Path, env: dict[str, str], log: Path, workers: int = 2):
    """The project (`target` "app") or a baseline (a gunicorn module:app from benchmarks/), up and ready."""
    port = free_port()
    cmd = serve_cmd(port, workers) if target == "app" else gunicorn_cmd(target, port, workers)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    up = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 120  # a 10,000-service directory takes a while to load
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited:\n" + log.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200 and len(up.workers) == workers:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not come up:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield up
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_wrk(port: int, requests: Path, duration: int, connections: int, threads: int = 1) -> dict:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        str(requests),
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(row for row in out.splitlines() if row.startswith("WRK_JSON "))
    result = json.loads(line.removeprefix("WRK_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


@dataclass
class Row:
    db: str
    target: str
    rps: float
    p50: float
    p99: float
    non2xx: int
    memory: list[tuple[float, float]]  # (USS, PSS) MB of each worker
    cpu_ms: float
    repeats: int
    note: str = ""


# --profile: where a worker's time goes, from py-spy samples (with idle: waits count too).
BUCKETS = [
    ("waiting for the SQLite write lock (BEGIN IMMEDIATE)", ("_begin (bot/storage/db.py",)),
    ("signature check", ("check_signature",)),
    ("logging", ("logging/__init__", "bot/logs.py")),
    ("after the response: caseworker notices", ("bot/messaging/notify.py",)),
    ("service: waiting on PostgreSQL (round trips, commit)", ("psycopg/connection.py", "_send_query_prepared")),
    ("service: SQLAlchemy + driver", ("sqlalchemy/", "sqlite3", "psycopg")),
    ("service: conversation engine", ("bot/conversation/", "bot/directory/")),
    ("service: other", ("bot/messaging/service.py", "bot/storage/turns.py")),
    ("TwiML", ("twilio/twiml",)),
    ("idle: waiting for a connection", ("SyncWorker.wait", "SyncWorker.accept")),
]


def profile_summary(paths: list[Path]) -> list[str]:
    counts: dict[str, int] = {}
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            total += int(n)
            name = next(
                (b for b, keys in BUCKETS if any(k in stack for k in keys)),
                "gunicorn + werkzeug + Flask request/response",
            )
            counts[name] = counts.get(name, 0) + int(n)
    return [f"    {n / max(total, 1):6.1%}  {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def measure(
    db: str,
    target: str,
    cwd: Path,
    env: dict[str, str],
    work: Path,
    warmup: Path,
    load: Path,
    args: argparse.Namespace,
) -> Row:
    name = target.split(":")[0].removesuffix("_app")
    with server(target, cwd, env, work / f"{db}-{name}.log") as up:
        run_wrk(up.port, warmup, args.warmup, args.connections)
        workers = up.workers
        spies = []
        if args.profile and target == "app":
            spies = [
                (
                    work / f"profile-{db}-{pid}.txt",
                    subprocess.Popen(
                        [
                            "py-spy",
                            "record",
                            "--idle",
                            "--rate",
                            "200",
                            "--duration",
                            str(args.duration - 1),
                            "--format",
                            "raw",
                            "--output",
                            str(work / f"profile-{db}-{pid}.txt"),
                            "--pid",
                            str(pid),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
                for pid in workers
            ]
        cpu0 = sum(cpu_seconds(p) for p in workers)
        r = run_wrk(up.port, load, args.duration, args.connections)
        cpu = sum(cpu_seconds(p) for p in workers) - cpu0
        for _, spy in spies:
            spy.wait()
        if spies:
            print(f"  profile of the {db} app workers (py-spy, sampling slows them):", file=sys.stderr)
            print("\n".join(profile_summary([path for path, _ in spies if path.exists()])), file=sys.stderr)
        memory = [memory_mb(p) for p in workers]
        if up.workers != workers:
            raise RuntimeError(f"a {name} worker died during the run: see {up.log}")
    row = Row(
        db,
        name,
        r["rps"],
        r["p50_us"] / 1000,
        r["p99_us"] / 1000,
        r["non2xx"] + r["socket_errors"] + r["timeouts"],
        memory,
        cpu * 1000 / max(r["requests"], 1),
        r["repeats"],
        r["first_bad"],
    )
    print(
        f"  {db:>10} {name:<7} {row.rps:7.0f} req/s  p50 {row.p50:6.1f} ms  p99 {row.p99:6.1f} ms  "
        f"non-2xx {row.non2xx}  USS/PSS {' '.join(f'{u:.0f}/{p:.0f}' for u, p in memory)} MB  "
        f"CPU {row.cpu_ms:.2f} ms/req  repeats {row.repeats}",
        file=sys.stderr,
        flush=True,
    )
    return row


def app_env(database_url: str, instance: Path, resources: Path | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "DATABASE_URL", "RESOURCES_PATH", "FLOWS_DIR", "PEACELINE_"))
    }
    env.update(
        DATABASE_URL=database_url,
        TWILIO_AUTH_TOKEN=TOKEN,
        PUBLIC_BASE_URL=BASE_URL,
        PEACELINE_INSTANCE=str(instance),
        SECRET_KEY="bench-secret-key",
        # 2,000 residents cannot make 1,000+ texts a second at 8 a minute each: without this the
        # loop guard would silence most of them and the run would measure the quiet path.
        LOOP_GUARD_PER_MINUTE="100000",
    )
    if resources is not None:
        env["RESOURCES_PATH"] = str(resources)
    return env


TARGET_RATIO = {"sqlite": 0.25, "postgresql": 0.20}
TARGET_P99_MS = 60
TARGET_MB = 150


def fmt_table(rows: list[Row]) -> str:
    lines = [
        "| db | target | req/s | p50 | p99 | non-2xx | USS / PSS per worker | worker CPU/req | ratio to bare |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    bare = {r.db: r.rps for r in rows if r.target == "bare"}
    for r in rows:
        ratio = f"{r.rps / bare[r.db]:.2f}" if r.target != "bare" and r.db in bare else ""
        uss, pss = max(u for u, _ in r.memory), max(p for _, p in r.memory)
        lines.append(
            f"| {r.db} | {r.target} | {r.rps:,.0f} | {r.p50:.1f} ms | {r.p99:.1f} ms | {r.non2xx} | "
            f"{uss:.0f} / {pss:.0f} MB | {r.cpu_ms:.2f} ms | {ratio} |"
        )
    return "\n".join(lines)


def check_targets(rows: list[Row]) -> list[str]:
    """The targets, each met or missed, for every row it applies to."""
    bare = {r.db: r.rps for r in rows if r.target == "bare"}
    out = []
    for r in (r for r in rows if r.target == "app"):
        checks = [
            (f"p99 <= {TARGET_P99_MS} ms at 16 connections", r.p99 <= TARGET_P99_MS, f"{r.p99:.0f} ms"),
            ("zero non-2xx", r.non2xx == 0, str(r.non2xx)),
        ]
        if r.db in bare:
            want = TARGET_RATIO[r.db]
            checks.insert(0, (f"ratio app/bare >= {want}", r.rps / bare[r.db] >= want, f"{r.rps / bare[r.db]:.2f}"))
        if "services" in r.db:
            uss = max(u for u, _ in r.memory)
            checks.append((f"<= {TARGET_MB} MB unique (USS) per worker", uss <= TARGET_MB, f"{uss:.0f} MB"))
        out += [f"- {r.db}: {name}: {'met' if ok else 'MISSED'} ({got})" for name, ok, got in checks]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=20, help="texts per resident in the request table")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--only", default="sqlite,postgresql,10k")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", PG_ADMIN_URL))
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, request files)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the app workers with py-spy (pip install py-spy) and say where time goes",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    if args.profile and shutil.which("py-spy") is None:
        print("--profile needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    only = set(args.only.split(","))

    from bot.storage.migrate import upgrade

    work = Path(tempfile.mkdtemp(prefix="peaceline-bench-"))
    started = time.monotonic()
    try:
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; signing "
            f"{args.residents * args.turns:,} requests ...",
            file=sys.stderr,
            flush=True,
        )
        warmup = write_requests(work / "warmup.tsv", signed_requests(200, 12, block=1))
        rows: list[Row] = []
        databases = []
        if "sqlite" in only:
            databases.append("sqlite")
        if "postgresql" in only:
            databases.append("postgresql")
        # One table for every run: each run has a database of its own, where every MessageSid is new.
        load = write_requests(work / "load.tsv", signed_requests(args.residents, args.turns))
        print(f"  signed in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        for db in databases:
            with (
                scratch_database(args.pg_admin_url, "peaceline_bench")
                if db == "postgresql"
                else _sqlite_url(work / "sqlite" / "peaceline.db")
            ) as url:
                upgrade(url)  # once, before the workers start (wsgi.py's own upgrade is then a no-op)
                create_minimal_tables(url)
                env = app_env(url, work / f"instance-{db}")
                rows.append(measure(db, "app", ROOT, env, work, warmup, load, args))
                rows.append(measure(db, "minimal_app:app", HERE, env, work, warmup, load, args))
                rows.append(measure(db, "bare_app:app", HERE, env, work, warmup, load, args))
        if "10k" in only:
            from matching import write_directory  # benchmarks/matching.py: the synthetic directory

            resources = work / "resources-10k.yaml"
            write_directory(resources, args.services, seed=7)
            with _sqlite_url(work / "sqlite-10k" / "peaceline.db") as url:
                upgrade(url)
                env = app_env(url, work / "instance-10k", resources)
                row = measure(f"sqlite, {args.services // 1000}k services", "app", ROOT, env, work, warmup, load, args)
                rows.append(row)
        print(
            f"\n{time.strftime('%Y-%m-%d')}, wrk -t1 -c{args.connections} -d{args.duration:g}s, "
            f"2 gunicorn workers (sync), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
            f"Python {sys.version.split()[0]}, {time.monotonic() - started:.0f} s\n"
        )
        print(fmt_table(rows))
        print()
        for line in check_targets(rows):
            print(line)
        problems = [
            f"{r.db} {r.target}: {r.repeats} requests repeated (the table ran out)"
            for r in rows
            if r.target == "app" and r.repeats
        ]
        problems += [f"{r.db} {r.target}: first non-2xx: {r.note}" for r in rows if r.non2xx]
        for p in problems:
            print(f"\nwarning: {p}")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _sqlite_url(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{path}"


if __name__ == "__main__":
    sys.exit(main())
