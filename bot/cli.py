"""The `peaceline` command: serve, scheduler, init-db, chat, check, send-due, …"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.config import ConfigError, Settings, load_settings, make_private_dir, port_from

if TYPE_CHECKING:
    from bot.directory.resources import Directory
    from bot.runtime import Runtime


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _app(settings: Settings, **kwargs):
    """The app, once migrations have run (DATA_KEY is checked against the stored data)."""
    from bot import create_app
    from bot.casework.retention import check_key

    try:
        app = create_app(settings, **kwargs)
        check_key(app.extensions["peaceline"].db)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    return app


def _runtime(settings: Settings) -> Runtime:
    """The runtime without the web app (the scheduler's), DATA_KEY checked as for the app."""
    from bot import golive, logs
    from bot.casework.retention import check_key
    from bot.messaging import notify
    from bot.runtime import Runtime

    logs.configure()
    try:
        rt = Runtime.build(settings)
        golive.enforce(rt)
        check_key(rt.db)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    notify.install(rt)
    return rt


def _directory(settings: Settings) -> Directory:
    """The directory at RESOURCES_PATH, or its first error as the command's."""
    from bot.directory.resources import DirectoryError, load_directory

    try:
        return load_directory(settings.resources_path)
    except DirectoryError as exc:
        raise click.ClickException(str(exc)) from None


def _migrate(settings: Settings) -> None:
    from sqlalchemy.exc import OperationalError

    from bot.storage.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except OperationalError as exc:
        raise click.ClickException(f"DATABASE_URL: cannot reach the database ({type(exc.orig).__name__})") from None


@click.group()
def main() -> None:
    """peaceline: an SMS and web-chat referral line."""


@main.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def init(folder: Path) -> None:
    """Write an operator folder to edit: flows, resources.yaml, an .env example and a README."""
    from bot.operator_folder import FolderExists, write_operator_folder

    try:
        written = write_operator_folder(folder)
    except FolderExists as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {folder} && peaceline check && peaceline serve")


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()
    _migrate(settings)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, help="default: $PORT or 8000")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-scheduler", is_flag=True, help="do not start the follow-up scheduler")
def serve(host: str, port: str | None, workers: int, no_scheduler: bool) -> None:
    """Run the web app (gunicorn) and the follow-up scheduler."""
    from bot.golive import all_warnings
    from bot.server import run

    settings = _settings()
    try:
        port_number = port_from(port if port is not None else os.environ.get("PORT"))
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    _migrate(settings)
    app = _app(settings)
    rt = app.extensions["peaceline"]
    warnings = all_warnings(settings, rt.directory, rt.db)
    run(app, settings, host, port_number, workers, scheduler=not no_scheduler, warnings=warnings)


@main.command()
@click.option("--interval", default=5, show_default=True, help="seconds between ticks")
def scheduler(interval: int) -> None:
    """Run only the follow-up scheduler (one per deployment)."""
    from bot.messaging.scheduler import run_forever

    settings = _settings()
    _migrate(settings)
    run_forever(_runtime(settings), interval)


@main.command("send-due")
@click.option("--now", "now_text", default=None, help="ISO 8601; without an offset it is UTC")
@click.option("--json", "as_json", is_flag=True)
def send_due(now_text: str | None, as_json: bool) -> None:
    """Send the follow-ups that are due, once, and print what happened."""
    from bot.messaging.dispatch import dispatch_due

    now = _parse_now(now_text)
    settings = _settings()
    _migrate(settings)
    app = _app(settings)
    done = dispatch_due(app.extensions["peaceline"], now)
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in done], ensure_ascii=False, indent=2))
        return
    for d in done:
        click.echo(f"#{d.id} {d.to} {d.status} (due {d.due_at})")
    click.echo(f"{len(done)} follow-up(s) handled")


def _parse_now(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not ISO 8601 (e.g. 2026-12-01T15:00:00Z)", param_hint="--now") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@main.command()
@click.option("--strict", is_flag=True, help="exit 1 on any go-live warning too (the go-live checklist runs this)")
def check(strict: bool) -> None:
    """Validate flows/*.yaml and resources.yaml, and say what a real program must fix before going live;
    exit 1 on any error (with --strict, on any go-live warning too)."""
    from bot.conversation.flows import check_flows
    from bot.directory.resources import DirectoryError, load_directory

    settings = _settings()
    try:
        directory = load_directory(settings.resources_path)
    except DirectoryError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    issues = check_flows(settings.flows_dir, set(directory.categories))
    for issue in issues:
        click.echo(str(issue), err=True)
    errors = sum(1 for i in issues if i.level == "error")
    warnings = len(issues) - errors + _warn_stale(settings, directory)
    if not errors:
        warnings += _lengths(settings)
    go_live = _go_live(settings, directory)
    click.echo(
        f"{len(directory.services)} services, {errors} error(s), {warnings + len(go_live)} warning(s), "
        f"{len(go_live)} of them go-live"
    )
    sys.exit(1 if errors or (strict and go_live) else 0)


def _go_live(settings: Settings, directory: Directory) -> list[str]:
    """Print the go-live warnings (see bot/golive.py); return their names."""
    from bot.golive import all_warnings
    from bot.storage.db import Database

    db = Database(settings.database_url)
    try:
        found = all_warnings(settings, directory, db)
    finally:
        db.dispose()
    for finding in found:
        click.echo(str(finding), err=True)
    return [f.check for f in found]


def _lengths(settings: Settings) -> int:
    """Print the mean and the longest reply in SMS segments, per language; warn past the aim."""
    from bot.clock import Clock
    from bot.conversation.lengths import MAX_MEAN, MAX_SEGMENTS, measure, reference_time
    from bot.runtime import Runtime

    rt = Runtime.build(settings)
    try:
        measured = measure(
            rt.engine,
            reference_time(Clock().now(), rt.engine),
            rt.directory.home_zip,
            fold_accents=settings.fold_accents,
        )
    finally:
        rt.db.dispose()
    for lengths in measured:
        click.echo(f"replies {lengths}")
        if not lengths.ok:
            click.echo(
                f"{settings.flows_dir}: warning: {lengths.lang} replies should average at most "
                f"{MAX_MEAN} SMS segments, none over {MAX_SEGMENTS}",
                err=True,
            )
    return sum(not lengths.ok for lengths in measured)


def _warn_stale(settings: Settings, directory: Directory) -> int:
    """Warn about services not verified within RESOURCE_MAX_AGE_DAYS (warnings: the exit code stays)."""
    from bot.casework.reports import stale_services
    from bot.clock import Clock

    today = Clock().now().astimezone(settings.program_timezone).date()
    stale = stale_services(directory, today, settings.resource_max_age_days)
    for s in stale:
        when = (
            f"last verified {s.verified}, {s.days_old} days ago" if s.verified else "never verified (no assured_date)"
        )
        click.echo(
            f"{settings.resources_path}: warning: service {s.id!r}: {when} "
            f"(RESOURCE_MAX_AGE_DAYS is {settings.resource_max_age_days})",
            err=True,
        )
    return len(stale)


@main.command("export-hsds")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def export_hsds(out_dir: Path) -> None:
    """Write DIR/services.json: the directory as HSDS 3.0 service objects."""
    from bot.directory.hsds import write_export

    settings = _settings()
    directory = _directory(settings)
    path = write_export(directory, out_dir, settings.program_timezone.key)
    click.echo(f"{len(directory.services)} services written to {path}")


@main.command("import-hsds")
@click.argument("source", metavar="PATH", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    default="resources.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the directory file to write",
)
def import_hsds(source: Path, out: Path) -> None:
    """Read HSDS 3.0 JSON or a CSV datapackage into a directory file; list every record skipped and why."""
    from bot.directory.hsds import HSDSError, import_file, write_directory
    from bot.directory.resources import DirectoryError, load_directory

    settings = _settings()
    try:  # the categories (their names, and terms to map to) are this deployment's own
        categories = load_directory(settings.resources_path).categories.values()
        result = import_file(source, categories, settings.program_timezone)
        for line in [f"skipped: {s}" for s in result.skipped] + [f"note: {n}" for n in result.notes]:
            click.echo(line, err=True)
        count = len(result.directory.services)
        if not count:
            raise click.ClickException(
                f"nothing to import: all {len(result.skipped)} record(s) skipped; {out} unchanged"
            )
        write_directory(result.directory, out, str(source))
    except (DirectoryError, HSDSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{count} service(s) written to {out}, {len(result.skipped)} skipped. "
        "Imported data: verify every entry before residents see it."
    )


@main.command()
@click.option("--lang", default=None, help="start in this language of the flows (en, es, …)")
@click.option("--phone", default="+12025550123", show_default=True, help="the pretend resident's number")
def chat(lang: str | None, phone: str) -> None:
    """Try the flows in the terminal, through the real service and database."""
    from bot import logs
    from bot.chat_repl import repl

    settings = _settings()
    _migrate(settings)
    make_private_dir(settings.instance_path)
    log_file = settings.instance_path / "chat.log"
    click.echo(f"Logs go to {log_file}.", err=True)
    with logs.to_file(log_file):
        repl(_app(settings), phone, lang)


@main.command()
@click.option("--since", default=None, help="first day, YYYY-MM-DD (default: 89 days before --until)")
@click.option("--until", default=None, help="last day, YYYY-MM-DD (default: today in PROGRAM_TIMEZONE)")
@click.option(
    "--month",
    default=None,
    help="a calendar month, YYYY-MM, instead of --since/--until: once it has "
    "ended, the only range counts by ZIP code and crisis kind are printed for",
)
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True)
def report(since: str | None, until: str | None, month: str | None, fmt: str) -> None:
    """Print the program report; small counts are hidden exactly as on the /reports page."""
    from bot.casework.reports import PeriodError, build_report, parse_period, to_csv, to_json, to_text
    from bot.clock import Clock
    from bot.storage.db import Database

    if month and (since or until):
        raise click.UsageError("give --month or --since/--until, not both")
    settings = _settings()
    try:
        period = parse_period(since, until, Clock().now(), settings.program_timezone, month)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{exc.field}") from None
    _migrate(settings)
    needs = list(_directory(settings).categories)
    db = Database(settings.database_url)
    try:
        with db.sessions() as s:
            result = build_report(s, period, needs)
    finally:
        db.dispose()
    click.echo({"text": to_text, "csv": to_csv, "json": to_json}[fmt](result), nl=False)


@main.command("create-caseworker")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["caseworker", "admin"]), default="caseworker", show_default=True)
@click.option("--phone", default=None, help="mobile for new-referral notices, e.g. +18165550100")
@click.option("--duty-hours", default=None, help="like 'Mon-Fri 09:00-17:00' (default: OFFICE_HOURS)")
def create_caseworker(email: str, name: str, role: str, phone: str | None, duty_hours: str | None) -> None:
    """Add an inbox account; the password comes from stdin, or is asked twice at a terminal."""
    from bot.clock import Clock
    from bot.storage.db import Database
    from bot.web.auth import AccountError
    from bot.web.auth import create_caseworker as create

    settings = _settings()
    if _stdin_is_terminal():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    _migrate(settings)
    db = Database(settings.database_url)
    try:
        caseworker_id = create(
            db, Clock().now(), email=email, name=name, password=password, role=role, phone=phone, duty_hours=duty_hours
        )
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"caseworker #{caseworker_id} created ({role})")


@main.command()
@click.argument("email")
def unlock(email: str) -> None:
    """Clear the wrong-password counts against an account (audited), so nobody waits to log in to it."""
    from bot.clock import Clock
    from bot.storage.db import Database
    from bot.web.auth import AccountError
    from bot.web.auth import unlock as clear

    settings = _settings()
    _migrate(settings)
    db = Database(settings.database_url)
    try:
        cleared = clear(db, settings.secret_key, Clock().now(), email)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"{email.strip()}: unlocked ({cleared} place(s) had wrong tries)")


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


@main.command()
@click.option(
    "--older-than",
    metavar="AGE",
    help="e.g. 180d or 26w: texts and notes older than this, and residents with no activity for that long",
)
@click.option(
    "--resident",
    "number",
    metavar="PHONE",
    help="one person who asks: all their texts and notes, and their number, at once",
)
@click.option("--dry-run", is_flag=True, help="print the counts and change nothing")
def purge(older_than: str | None, number: str | None, dry_run: bool) -> None:
    """Remove message bodies and notes and anonymise residents; rows stay, so the reports do not change."""
    from bot.casework.retention import parse_age, purge_older_than, purge_resident
    from bot.messaging.phones import BadNumber, to_e164

    if (older_than is None) == (number is None):
        raise click.UsageError("give either --older-than AGE or --resident PHONE")
    try:
        age = parse_age(older_than) if older_than else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    try:
        phone = to_e164(number) if number else ""
    except BadNumber:
        raise click.BadParameter("not a phone number", param_hint="--resident") from None
    settings = _settings()
    _migrate(settings)
    rt = _app(settings).extensions["peaceline"]
    purged = (
        purge_older_than(rt.db, rt.clock.now(), age, dry_run)
        if age is not None
        else purge_resident(rt.db, rt.clock.now(), phone, dry_run)
    )
    if purged is None:
        raise click.ClickException("no resident has that number (never texted, or already anonymised)")
    counts = ", ".join(f"{n} {name.replace('_', '-')}" for name, n in purged.as_dict().items())
    click.echo(f"{'dry run, would purge' if dry_run else 'purged'}: {counts}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup(path: Path) -> None:
    """Copy the SQLite database to PATH, consistently, while the line runs (PostgreSQL: pg_dump -Fc)."""
    from bot.casework.retention import BackupError, backup_sqlite

    settings = _settings()
    try:
        size = backup_sqlite(settings.database_url, path)
    except BackupError as exc:
        raise click.ClickException(f"backup: {exc}") from None
    click.echo(f"backup written to {path} ({size // 1024} KiB, integrity ok)")


@main.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt everything with the first DATA_KEY (DATA_KEY=NEW,OLD) and recompute phone lookups."""
    from bot.casework.retention import rotate_key as rotate
    from bot.storage.crypto import UnreadableValue

    settings = _settings()
    _migrate(settings)
    rt = _app(settings).extensions["peaceline"]
    try:
        done = rotate(rt.db)
    except (ConfigError, UnreadableValue) as exc:
        raise click.ClickException(f"rotate-key: {exc}") from None
    for column, counts in done.items():
        line = f"{column}: {counts['re-encrypted']} re-encrypted, {counts['encrypted']} encrypted for the first time"
        click.echo(line + (f", {counts['lookups']} lookups recomputed" if "lookups" in counts else ""))
