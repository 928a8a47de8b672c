"""Settings from the environment, checked once at start-up."""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.directory.resources import SERVICE_AREA_MILES
from bot.messaging.phones import BadNumber, is_region, valid_e164
from bot.messaging.rate import DEFAULT_MPS, sender_type

PACKAGE = Path(__file__).resolve().parent
FLOWS, RESOURCES, INSTANCE = "flows", "resources.yaml", "instance"  # in the working folder, by default
# The legal window for unsolicited texts (TCPA): never before 8 am or after 9 pm local time.
LEGAL_WINDOW = (time(8, 0), time(21, 0))
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ENVIRONMENTS = ("development", "production")
# Sends in flight at once: by default enough to keep SENDER_MPS with Twilio answering in 300 ms.
SLOW_CALL_SECONDS, MIN_CONCURRENCY, MAX_CONCURRENCY = 0.3, 8, 64


class ConfigError(Exception):
    """A setting is wrong; the message is one line that names it."""


@dataclass(frozen=True)
class OfficeHours:
    days: frozenset[int]
    opens: time
    closes: time

    def is_open(self, weekday: int, at: time) -> bool:
        return weekday in self.days and self.opens <= at < self.closes


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    instance_path: Path
    resources_path: Path
    flows_dir: Path
    program_timezone: ZoneInfo
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    public_base_url: str | None = None
    session_idle_hours: int = 24
    send_window: tuple[time, time] = (time(9, 0), time(20, 0))
    office_hours: OfficeHours = OfficeHours(frozenset(range(5)), time(9, 0), time(17, 0))
    escalate_after_minutes: int = 30
    escalation_phones: tuple[str, ...] = ()
    resource_max_age_days: int = 180
    trusted_proxies: int = 0
    ratelimit_storage_uri: str = "memory://"
    data_key: str | None = None
    loop_guard_per_minute: int = 8
    loop_guard_quiet_minutes: int = 10
    crisis_hold_hours: int = 24
    holidays: frozenset[date] = frozenset()  # not working days (HOLIDAYS)
    escalation_batch_minutes: int = 5  # at most one text to each on-call phone this often
    web_referrals_per_hour: int = 5  # per client address; more still open, one tier lower (bot/triage.py)
    service_area_miles: int = SERVICE_AREA_MILES
    allowed_countries: frozenset[str] = frozenset({"US"})
    fold_accents: bool = True  # FOLD_ACCENTS: á í ó ú unaccented by SMS when it saves a segment
    environment: str = "development"
    program_number: str | None = None  # PROGRAM_NUMBER: the number printed on cards (E.164)
    sender_mps: float = 1.0  # SENDER_MPS: texts a second through Twilio, per process
    send_concurrency: int = MIN_CONCURRENCY  # SEND_CONCURRENCY: follow-ups sent at once by one scheduler

    @property
    def sender_name(self) -> str:
        return "twilio" if self.twilio_account_sid and self.twilio_auth_token else "log"

    @property
    def card_number(self) -> str | None:
        """The number residents text: PROGRAM_NUMBER, else the Twilio sender number (a Messaging
        Service SID names no number, so with one alone PROGRAM_NUMBER is needed)."""
        return self.program_number or self.twilio_from_number

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def production(self) -> bool:
        return self.environment == "production"


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _clock(name: str, raw: str) -> time:
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: {raw.strip()!r} is not a time like 09:00") from None


def parse_send_window(raw: str) -> tuple[time, time]:
    """'09:00-20:00' -> (09:00, 20:00), clamped check against the legal 8 am-9 pm."""
    start, sep, end = raw.partition("-")
    if not sep:
        raise ConfigError(f"SEND_WINDOW must look like 09:00-20:00, got {raw!r}")
    window = (_clock("SEND_WINDOW", start), _clock("SEND_WINDOW", end))
    if window[0] >= window[1]:
        raise ConfigError(f"SEND_WINDOW must start before it ends, got {raw!r}")
    if window[0] < LEGAL_WINDOW[0] or window[1] > LEGAL_WINDOW[1]:
        raise ConfigError(f"SEND_WINDOW {raw!r} is outside the legal 08:00-21:00")
    return window


def parse_office_hours(raw: str) -> OfficeHours:
    """'Mon-Fri 09:00-17:00' or 'Mon,Wed,Fri 10:00-16:00'."""
    match = re.fullmatch(r"\s*([A-Za-z,\-]+)\s+(\S+)\s*-\s*(\S+)\s*", raw)
    if not match:
        raise ConfigError(f"OFFICE_HOURS must look like 'Mon-Fri 09:00-17:00', got {raw!r}")
    days: set[int] = set()
    for part in match.group(1).lower().split(","):
        first, _, last = part.partition("-")
        try:
            lo, hi = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        except ValueError:
            raise ConfigError(f"OFFICE_HOURS has an unknown day in {raw!r}") from None
        days.update(range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(0, hi + 1)])
    opens, closes = _clock("OFFICE_HOURS", match.group(2)), _clock("OFFICE_HOURS", match.group(3))
    if opens >= closes:
        raise ConfigError(f"OFFICE_HOURS must open before it closes, got {raw!r}")
    return OfficeHours(frozenset(days), opens, closes)


def _database_url(env: dict[str, str], instance: Path) -> str:
    raw = env.get("DATABASE_URL") or f"sqlite:///{instance / 'peaceline.db'}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("DATABASE_URL is not a database URL (e.g. postgresql+psycopg://user@host/db)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"DATABASE_URL must be sqlite or postgresql, got {url.get_backend_name()!r}")
    if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+psycopg":
        raw = str(url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return raw


def _secret_key(env: dict[str, str], instance: Path) -> str:
    """SECRET_KEY, or one generated once and kept in the instance folder."""
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    make_private_dir(instance)
    key = secrets.token_urlsafe(48)
    try:  # owner-only from the start (O_EXCL: never through a file someone else put there)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(key)
    except FileExistsError:  # another process starting at the same moment made it first
        return path.read_text().strip()
    return key


def make_private_dir(path: Path) -> None:
    """Create a folder for the line's own files, readable by its owner only (an existing one is left as it is)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def packaged(name: str) -> Path:
    """A default shipped with the line: bot/defaults/NAME in a wheel (copied there at build time from
    the top-level flows/ and resources.yaml), the source tree's own NAME in a checkout."""
    built = PACKAGE / "defaults" / name
    return built if built.exists() else PACKAGE.parent / name


def is_packaged(path: Path) -> bool:
    """The path is one of the packaged defaults (the start-up banner says so)."""
    return path.resolve() in {packaged(FLOWS).resolve(), packaged(RESOURCES).resolve()}


def _in_folder_or_packaged(name: str) -> Path:
    """./NAME in the working folder when it exists, else the packaged default."""
    local = Path.cwd() / name
    return local if local.exists() else packaged(name)


def _readable(env: dict[str, str], name: str, default: str, want_dir: bool) -> Path:
    path = Path(env.get(name) or _in_folder_or_packaged(default))
    ok = path.is_dir() if want_dir else path.is_file() and os.access(path, os.R_OK)
    if not ok:
        kind = "a readable folder" if want_dir else "a readable file"
        raise ConfigError(f"{name} must be {kind}: {path}")
    return path


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1 or 0), got {raw!r}")


def _timezone(env: dict[str, str]) -> ZoneInfo:
    name = env.get("PROGRAM_TIMEZONE") or "America/Chicago"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"PROGRAM_TIMEZONE {name!r} is not a time zone like America/Chicago") from None


def _phones(env: dict[str, str], name: str) -> tuple[str, ...]:
    out = []
    for raw in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        try:
            out.append(valid_e164(raw))
        except BadNumber:
            raise ConfigError(f"{name} has a number that is not valid: {raw[:4]}…") from None
    return tuple(out)


def _program_number(env: dict[str, str]) -> str | None:
    raw = (env.get("PROGRAM_NUMBER") or "").strip()
    try:
        return valid_e164(raw) if raw else None
    except BadNumber:
        raise ConfigError(f"PROGRAM_NUMBER is not a valid phone number: {raw[:4]}…") from None


def parse_holidays(raw: str, today: date | None = None) -> frozenset[date]:
    """'2026-12-24,2026-12-31' and/or 'US' (the federal holidays, this year and the next two)."""
    days: set[date] = set()
    for part in filter(None, (p.strip() for p in raw.split(","))):
        if part.upper() == "US":
            import holidays  # only when asked for: it is a large table

            year = (today or date.today()).year
            days.update(holidays.US(years=range(year - 1, year + 3)))
            continue
        try:
            days.add(date.fromisoformat(part))
        except ValueError:
            raise ConfigError(f"HOLIDAYS must be dates like 2026-12-25 (or US), got {part!r}") from None
    return frozenset(days)


def _countries(env: dict[str, str]) -> frozenset[str]:
    """ALLOWED_COUNTRIES: ISO regions whose numbers a web visitor may give ('US' or 'US,CA')."""
    codes = {c.strip().upper() for c in (env.get("ALLOWED_COUNTRIES") or "US").split(",") if c.strip()}
    unknown = sorted(c for c in codes if not is_region(c))
    if not codes or unknown:
        got = ", ".join(unknown) or "nothing"
        raise ConfigError(f"ALLOWED_COUNTRIES must be ISO country codes like US or US,CA, got {got}")
    return frozenset(codes)


def _environment(env: dict[str, str]) -> str:
    raw = (env.get("PEACELINE_ENV") or "development").strip().lower()
    if raw not in ENVIRONMENTS:
        raise ConfigError(f"PEACELINE_ENV must be development or production, got {raw!r}")
    return raw


def _twilio(env: dict[str, str]) -> dict[str, str | None]:
    sid, token = env.get("TWILIO_ACCOUNT_SID") or None, env.get("TWILIO_AUTH_TOKEN") or None
    if sid and not token:
        raise ConfigError("TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not")
    sender, service = env.get("TWILIO_FROM_NUMBER") or None, env.get("TWILIO_MESSAGING_SERVICE_SID") or None
    if sid and not (sender or service):
        raise ConfigError(
            "TWILIO_ACCOUNT_SID is set but neither TWILIO_FROM_NUMBER nor TWILIO_MESSAGING_SERVICE_SID is"
        )
    return {
        "twilio_account_sid": sid,
        "twilio_auth_token": token,
        "twilio_from_number": sender,
        "twilio_messaging_service_sid": service,
    }


def _sending(env: dict[str, str], twilio: dict[str, str | None]) -> tuple[float, int]:
    """SENDER_MPS (by default the limit of the sender's type) and SEND_CONCURRENCY."""
    kind = sender_type(twilio["twilio_from_number"], twilio["twilio_messaging_service_sid"])
    raw = (env.get("SENDER_MPS") or "").strip()
    try:
        mps = float(raw) if raw else DEFAULT_MPS[kind]
    except ValueError:
        mps = math.nan
    if not 0 < mps <= 10_000:  # also NaN and inf
        raise ConfigError(f"SENDER_MPS must be texts a second, above 0 and at most 10000 (like 1 or 100), got {raw!r}")
    default = min(MAX_CONCURRENCY, max(MIN_CONCURRENCY, math.ceil(mps * SLOW_CALL_SECONDS)))
    concurrency = _int(env, "SEND_CONCURRENCY", default, minimum=1)
    if concurrency > MAX_CONCURRENCY:
        raise ConfigError(f"SEND_CONCURRENCY must be at most {MAX_CONCURRENCY}, got {concurrency}")
    return mps, concurrency


def _base_url(env: dict[str, str]) -> str | None:
    raw = (env.get("PUBLIC_BASE_URL") or "").strip().rstrip("/")
    if raw and not re.match(r"^https?://[^/\s]+", raw):
        raise ConfigError(f"PUBLIC_BASE_URL must start with https:// (got {raw!r})")
    return raw or None


def load_settings(env: dict[str, str] | None = None, instance_path: Path | None = None) -> Settings:
    """Read every setting; raise ConfigError naming the first one that is wrong."""
    env = dict(os.environ if env is None else env)
    instance = Path(instance_path or env.get("PEACELINE_INSTANCE") or Path.cwd() / INSTANCE)
    twilio = _twilio(env)
    sender_mps, send_concurrency = _sending(env, twilio)
    return Settings(
        database_url=_database_url(env, instance),
        secret_key=_secret_key(env, instance),
        instance_path=instance,
        resources_path=_readable(env, "RESOURCES_PATH", RESOURCES, want_dir=False),
        flows_dir=_readable(env, "FLOWS_DIR", FLOWS, want_dir=True),
        program_timezone=_timezone(env),
        public_base_url=_base_url(env),
        session_idle_hours=_int(env, "SESSION_IDLE_HOURS", 24, minimum=1),
        send_window=parse_send_window(env.get("SEND_WINDOW") or "09:00-20:00"),
        office_hours=parse_office_hours(env.get("OFFICE_HOURS") or "Mon-Fri 09:00-17:00"),
        escalate_after_minutes=_int(env, "ESCALATE_AFTER_MINUTES", 30, minimum=1),
        escalation_phones=_phones(env, "ESCALATION_PHONES"),
        resource_max_age_days=_int(env, "RESOURCE_MAX_AGE_DAYS", 180, minimum=1),
        trusted_proxies=_int(env, "TRUSTED_PROXIES", 0),
        ratelimit_storage_uri=env.get("RATELIMIT_STORAGE_URI") or "memory://",
        data_key=env.get("DATA_KEY") or None,
        loop_guard_per_minute=_int(env, "LOOP_GUARD_PER_MINUTE", 8, minimum=1),
        loop_guard_quiet_minutes=_int(env, "LOOP_GUARD_QUIET_MINUTES", 10, minimum=1),
        crisis_hold_hours=_int(env, "CRISIS_HOLD_HOURS", 24, minimum=1),
        holidays=parse_holidays(env.get("HOLIDAYS") or ""),
        escalation_batch_minutes=_int(env, "ESCALATION_BATCH_MINUTES", 5, minimum=1),
        web_referrals_per_hour=_int(env, "WEB_REFERRALS_PER_HOUR", 5, minimum=1),
        service_area_miles=_int(env, "SERVICE_AREA_MILES", SERVICE_AREA_MILES, minimum=1),
        allowed_countries=_countries(env),
        fold_accents=_flag(env, "FOLD_ACCENTS", True),
        environment=_environment(env),
        program_number=_program_number(env),
        sender_mps=sender_mps,
        send_concurrency=send_concurrency,
        **twilio,
    )


def port_from(raw: str | None, default: int = 8000) -> int:
    """The PORT setting as a number, or a ConfigError naming it."""
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"PORT must be a number from 1 to 65535, got {raw!r}")
    return int(raw)
