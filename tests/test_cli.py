"""The operator's commands: serve, init-db, check, chat."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT

from bot.cli import main


def run(env: dict[str, str], *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def test_check_passes_on_the_shipped_files(env):
    result = run(env, "check")
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_check_names_file_line_and_step_of_a_broken_flow(env, tmp_path):
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    food = flows / "food.yaml"
    food.write_text(food.read_text().replace("next: places", "next: nowhere"))
    result = run({**env, "FLOWS_DIR": str(flows)}, "check")
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(food.read_text().splitlines(), 1) if "next: nowhere" in text)
    assert "food.yaml" in result.output and f":{line}" in result.output and "zip" in result.output


def test_a_broken_flow_stops_the_app_with_one_line(env, tmp_path):
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    (flows / "food.yaml").write_text((flows / "food.yaml").read_text().replace("next: places", "next: x"))
    result = run({**env, "FLOWS_DIR": str(flows)}, "init-db")
    assert result.exit_code == 0  # migrations need no flows
    result = run({**env, "FLOWS_DIR": str(flows)}, "send-due")
    assert result.exit_code == 1 and "FLOWS_DIR" in result.output and "food.yaml" in result.output


def test_chat_runs_the_real_flows_in_a_terminal(env):
    result = run(env, "chat", stdin="I need food\n64124\n")
    assert result.exit_code == 0, result.output
    assert "ZIP code" in result.output and "Places with food" in result.output


def test_chat_in_spanish(env):
    result = run(env, "chat", "--lang", "es", stdin="2\n")
    assert result.exit_code == 0, result.output
    assert "código postal" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def children_of(pid: int) -> list[str]:
    """Command lines of a process's descendants (from /proc)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(cmdline)
            out += children_of(int(status.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the server's processes")
def test_serve_migrates_and_runs_web_workers_and_one_scheduler(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO", "DATABASE_URL", "PORT", "DATA_KEY"))}
    env.update(PEACELINE_INSTANCE=str(tmp_path / "instance"), PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and health is None:
            try:
                health = get_json(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.3)
        assert health == {"status": "ok", "db": "ok", "attention": 0}
        assert (tmp_path / "instance" / "peaceline.db").exists()
        time.sleep(1)  # the scheduler starts once the workers are ready
        family = children_of(proc.pid)
        assert sum("bot scheduler" in c for c in family) == 1, family
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output and "POST" in output and "/sms" in output
    assert "log only" in output
