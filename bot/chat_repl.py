"""`peaceline chat`: the real service and database, in a terminal."""

from __future__ import annotations

import uuid

import click
from flask import Flask

from bot.messaging.phones import to_e164


def repl(app: Flask, phone: str, lang: str | None) -> None:
    service = app.extensions["peaceline"].service
    engine = service.engine
    if lang is not None and lang not in engine.languages:
        raise click.BadParameter(f"the flows speak {', '.join(engine.languages)}", param_hint="--lang")
    address = to_e164(phone)
    click.echo(f"Texting as {phone}. Type a message; Ctrl-D to quit.")
    if lang is not None and lang != engine.languages[0]:
        _say(service, address, engine.matcher.says(f"lang:{lang}") or lang)  # "espanol": the resident's own word
    while True:
        try:
            text = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            click.echo()
            return
        _say(service, address, text)


def _say(service, address: str, text: str) -> None:
    handled = service.handle(channel="terminal", address=address, text=text, provider_sid=f"TERM{uuid.uuid4().hex}")
    for reply in handled.replies:
        click.echo(click.style("bot> ", fg="green") + reply.body)
    if handled.options:
        click.echo(click.style("     [" + " | ".join(handled.options) + "]", dim=True))
