"""`peaceline serve`: gunicorn for the web, one scheduler process beside it."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from bot.config import Settings, is_packaged
from bot.golive import Finding


class _Gunicorn(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def banner(
    settings: Settings, host: str, port: int, workers: int, scheduler: bool, warnings: Sequence[Finding] = ()
) -> str:
    base = settings.public_base_url or f"http://{host}:{port}"
    db = "SQLite " + settings.database_url.split("///", 1)[-1] if settings.is_sqlite else "PostgreSQL"
    sender = (
        "Twilio REST"
        if settings.sender_name == "twilio"
        else "log only (set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to send texts)"
    )
    lines = [
        f"peaceline on http://{host}:{port} ({workers} worker(s)); database: {db}",
        f"  Twilio webhook  POST {base}/sms",
        f"  status callback POST {base}/sms/status",
        f"  health          GET  {base}/healthz",
        f"  web chat        {base}/chat",
        f"  caseworkers     {base}/inbox   (add one: peaceline create-caseworker --email … --name …)",
        f"  reports         {base}/reports",
        f"  sender: {sender}",
        f"  scheduler: {'one process' if scheduler else 'off'}",
        f"  flows: {_source(settings.flows_dir)}",
        f"  resources: {_source(settings.resources_path)}",
        f"  instance: {settings.instance_path}",
    ]
    if not settings.twilio_auth_token:
        lines.append("  note: TWILIO_AUTH_TOKEN is not set, so /sms refuses every request (503)")
    if warnings:
        lines.append(f"  not ready to go live ({len(warnings)}; peaceline check --strict lists them):")
        lines += [f"    {w.check}: {w.text}" for w in warnings]
    return "\n".join(lines)


def _source(path: Path) -> str:
    """Where a data file comes from: the operator's own, or the packaged sample (`peaceline init` copies it)."""
    if is_packaged(path):
        return f"{path} (packaged defaults: run `peaceline init DIR` for a folder of your own)"
    return str(path)


def run(
    app: Flask,
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    scheduler: bool,
    warnings: Sequence[Finding] = (),
) -> None:
    children: list[subprocess.Popen] = []

    def when_ready(_server: Any) -> None:
        print(banner(settings, host, port, workers, scheduler, warnings), flush=True)
        if scheduler:
            children.append(subprocess.Popen([sys.executable, "-m", "bot", "scheduler"]))

    def post_fork(_server: Any, _worker: Any) -> None:
        # Connections made before the fork belong to the master; each worker opens its own.
        app.extensions["peaceline"].db.engine.dispose(close=False)

    def on_exit(_server: Any) -> None:
        for child in children:
            child.terminate()
            child.wait(timeout=10)

    app.extensions["peaceline"].db.dispose()
    # The preloaded app (the directory, flows, matcher) is shared with the workers copy-on-write; a
    # collection in a worker would touch every object's header and copy its page. Frozen objects are
    # never collected, so their pages stay shared.
    gc.collect()
    gc.freeze()
    _Gunicorn(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "preload_app": True,
            "when_ready": when_ready,
            "post_fork": post_fork,
            "on_exit": on_exit,
            "accesslog": None,
            "timeout": 30,
            "graceful_timeout": 10,
        },
    ).run()
