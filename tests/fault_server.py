"""Real processes for the fault tests: `peaceline serve` / `peaceline send-due` with their own database.

Everything runs on 127.0.0.1. Each process starts in its own session, so `kill()` is one
`os.killpg(pgid, SIGKILL)` that takes the gunicorn master and its workers down at once, as a
power cut or the OOM killer would.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from conftest import AUTH_TOKEN, BASE_URL

from bot.storage.db import scratch_database

ROOT = Path(__file__).resolve().parent.parent
# The environment of every child: ours, minus anything that would point it elsewhere.
DROPPED = (
    "TWILIO_",
    "DATABASE_URL",
    "PORT",
    "PUBLIC_BASE_URL",
    "SECRET_KEY",
    "DATA_KEY",
    "PEACELINE_",
    "TRUSTED_PROXIES",
    "RATELIMIT_",
    "LOOP_GUARD_",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_admin_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return url if url.startswith("postgresql") else None


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'fault.db'}"
        return
    admin_url = postgres_admin_url()
    assert admin_url, "the PostgreSQL variant needs TEST_DATABASE_URL"
    with scratch_database(admin_url, "peaceline_fault") as url:
        yield url


def child_env(database_url: str, instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    env.update(
        DATABASE_URL=database_url,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_BASE_URL=BASE_URL,
        SECRET_KEY="fault-test-secret-key",
        PEACELINE_INSTANCE=str(instance),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Process:
    """One `python -m bot …` child in its own process group, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", *args],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the whole group (gunicorn's master and workers, or the CLI), then reap it."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Server(Process):
    """`peaceline serve --workers 2 --no-scheduler` on a free port."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        super().__init__(["serve", "--workers", "2", "--no-scheduler", "--port", str(self.port)], env, log)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                if request("127.0.0.1", self.port, "GET", "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not answer /healthz within {timeout} s:\n{self.output()[-3000:]}")


def request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection; OSError/HTTPException when the server is away."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_form(port: int, path: str, params: dict[str, str], signature: str, timeout: float = 30) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(params).encode()
    return request(
        "127.0.0.1",
        port,
        "POST",
        path,
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        timeout,
    )


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
