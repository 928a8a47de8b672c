"""The resource directory: resources.yaml (Open Referral HSDS 3.0 field names), validated and ranked.

The YAML maps 1:1 onto HSDS 3.0 services: a service's `locations` are the `location`
objects of its `service_at_locations`, its `categories` are the bot's short keys (each
category carries the HSDS `taxonomy_term` an export turns into an attribute), and
`x_bot` holds what HSDS lacks (keywords, priority, confidentiality, tags, national).
"""

from __future__ import annotations

import calendar
import gc
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
import yaml_rs
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from bot.directory.geo import PointSet, miles_between, zip_centroid
from bot.messaging.phones import BadNumber, regional_e164, short_number
from bot.yaml_lines import line_of

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # index = date.weekday()
NEAR_MILES = 5.0  # a line with no place (988, a hotline) ranks as if it were this far away
DISTANCE_STEP = 0.5  # distances rank in half-mile steps, so language decides between near equals
MAX_REPORTED = 20  # error lines shown before "... and N more"
ORDERS_CACHED = 512  # (category, origin ZIP) rankings kept; a 10,000-service directory needs ~70 KB each
SERVICE_AREA_MILES = 15  # the setting's default: a ZIP farther from the centre of the directory's own ZIPs is away
HORIZON_DAYS = 366  # how far ahead the next opening is looked for (a "5SA" rule may skip months)

# A service's hours at the moment of a query, as a rank, lowest first: open now, opens later
# today, hours unknown (it may be open), then by the day it opens next (HOURS_UNKNOWN + days
# ahead: the sooner the better), and last NEVER (no opening within the horizon).
OPEN_NOW, OPENS_TODAY, HOURS_UNKNOWN = 0, 1, 2
NEVER = HOURS_UNKNOWN + HORIZON_DAYS + 1

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)(?::00)?$")
_BYDAY = re.compile(r"^(-?[1-5])?(MO|TU|WE|TH|FR|SA|SU)$")


class DirectoryError(ValueError):
    """resources.yaml is unreadable or invalid; the message names the file, the entry and the line."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaxonomyTerm(_Model):
    code: Text
    name: Text
    taxonomy: Text


class Category(_Model):
    """A need: its key (what flows and the vocabulary name it), and its name in each language."""

    key: Slug
    taxonomy_term: TaxonomyTerm
    name: dict[str, Text] = Field(min_length=1)


class Phone(_Model):
    number: str
    extension: int | None = None
    type: Literal["voice", "text", "fax", "cell", "video", "pager", "textphone"] | None = None
    description: str | None = None

    @field_validator("number", mode="before")
    @classmethod
    def _valid_us(cls, number: Any) -> str:
        try:
            return regional_e164(str(number), "US")
        except BadNumber:
            raise ValueError(f"not a valid US phone number: {str(number)!r}") from None


class Address(_Model):
    address_1: Text
    address_2: str | None = None
    city: Text
    state_province: Text
    postal_code: Annotated[str, StringConstraints(pattern=r"^\d{5}(-\d{4})?$")]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "US"

    @field_validator("postal_code", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return f"{value:05d}" if isinstance(value, int) else value  # an unquoted ZIP reads as a number


class Location(_Model):
    name: str | None = None
    addresses: list[Address] = Field(min_length=1)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _both_coordinates(self) -> Location:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class Schedule(_Model):
    """An RFC 5545-style rule: WEEKLY on `byday`, or MONTHLY on ordinal days ("1SA,-1FR")."""

    freq: Literal["WEEKLY", "MONTHLY"]
    byday: str
    opens_at: str
    closes_at: str  # "24:00" is the end of the day; earlier than opens_at runs past midnight
    description: str | None = None

    @field_validator("opens_at", "closes_at", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> str:
        return _time_of_day(value if isinstance(value, (str, int)) else str(value))

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        problem = _schedule_problem(self.freq, self.byday, self.opens_at, self.closes_at)
        if problem:
            raise ValueError(problem)
        return self


# A directory repeats a few dozen times and day lists: each distinct one is checked once.
@lru_cache(maxsize=4096)
def _time_of_day(value: str | int) -> str:
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 17:00 as sexagesimal 1020 (17:00:00 as 61200)
        hours, minutes = divmod(value, 60) if value <= 1440 else divmod(value // 60, 60)
        value = f"{hours:02d}:{minutes:02d}"
    text = str(value).strip()
    match = _HHMM.match(text)
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"not a time of day HH:MM: {text!r}")
    return f"{match.group(1)}:{match.group(2)}"


@lru_cache(maxsize=4096)
def _schedule_problem(freq: str, byday: str, opens_at: str, closes_at: str) -> str | None:
    for token in byday.split(","):
        match = _BYDAY.match(token.strip())
        if not match:
            return f"byday: unknown day {token.strip()!r} (use MO,TU,WE,TH,FR,SA,SU)"
        if (freq == "MONTHLY") != bool(match.group(1)):
            return f"byday: {token.strip()!r}: MONTHLY days take an ordinal (1SA, -1FR), WEEKLY none"
    if opens_at == "24:00":
        return "opens_at: 24:00 is only a closing time"
    if opens_at == closes_at:
        return "opens_at equals closes_at (all day is 00:00 to 24:00)"
    return None


class Language(_Model):
    code: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")]
    name: str | None = None


class Organization(_Model):
    name: Text
    website: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None


class Attribute(_Model):
    taxonomy_term: TaxonomyTerm
    value: str | None = None


class XBot(_Model):
    """What HSDS lacks and the bot needs."""

    # Factories, not `= []`: pydantic deep-copies a mutable default for every entry (slow at 10,000).
    keywords: list[Text] = Field(default_factory=list)
    priority: int = 0  # higher first
    confidential: bool = False  # never text its address (a DV shelter): only its phone
    tags: list[Slug] = Field(default_factory=list)
    national: bool = False  # a national line with no location (988)
    short_number: str | None = None  # dialled instead of the first phone: "988", "211"

    @field_validator("short_number", mode="before")
    @classmethod
    def _short(cls, value: Any) -> str | None:
        if value is None:
            return None
        return short_number(str(value), "US")  # BadNumber is a ValueError: pydantic reports its message


class Service(_Model):
    id: Slug
    name: Text
    description: Text
    status: Literal["active", "inactive", "defunct", "temporarily closed"]
    organization: Organization
    categories: list[Slug] = Field(min_length=1)  # keys of the file's own categories
    attributes: list[Attribute] = Field(default_factory=list)
    phones: list[Phone] = Field(min_length=1)
    locations: list[Location] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    languages: list[Language] = Field(default_factory=list)
    eligibility_description: str | None = None
    fees_description: str | None = None
    assured_date: date | None = None  # last verified; None = never (a warning, not an error)
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None
    x_bot: XBot = XBot()

    @model_validator(mode="after")
    def _placeless_lines(self) -> Service:
        if self.locations and self.x_bot.confidential:
            raise ValueError("a confidential service lists no locations: its address must never be texted or exported")
        if self.locations and self.x_bot.national:
            raise ValueError("a national line lists no locations")
        return self


class DirectoryFile(_Model):
    """The whole resources.yaml."""

    spec_version: Literal["3.0"]
    sample_data: bool = False
    categories: list[Category]
    services: list[Service]


@dataclass(frozen=True)
class Opening:
    """When a service that is closed now opens next, in the program's time zone."""

    days: int  # days from today: 0 later today, 1 tomorrow
    on: date
    at: str  # "8:30am"


@dataclass(frozen=True)
class Match:
    service_id: str
    name: str
    phone: str
    address: str | None  # None for a confidential service or one without a location
    open_now: bool | None  # None: no hours listed
    open_until: str | None  # while open: "5pm" (back-to-back hours joined); None when open around the clock
    opens: Opening | None  # while closed: the next opening; None when open or hours unknown
    distance_miles: float | None
    confidential: bool


# ---------------------------------------------------------------- hours

_Rule = tuple[frozenset[tuple[int, int]], int, int]  # ({(weekday, ordinal or 0)}, opens, closes) in minutes
_Hours = frozenset[_Rule]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@lru_cache(maxsize=4096)  # a directory repeats a few dozen patterns ("MO,TU,WE,TH,FR" 09:00-17:00)
def _rule(byday: str, opens_at: str, closes_at: str) -> _Rule:
    days = set()
    for token in byday.split(","):
        found = _BYDAY.match(token.strip())
        if found is None:  # the model's validator accepts only tokens this pattern reads
            raise ValueError(f"not a BYDAY token: {token!r}")
        ordinal, day = found.groups()
        days.add((WEEKDAYS.index(day), int(ordinal or 0)))
    opens, closes = _minutes(opens_at), _minutes(closes_at)
    return frozenset(days), opens, closes if closes > opens else closes + 1440


@lru_cache(maxsize=1024)  # queries ask about the same few days
def _day_keys(day: date) -> frozenset[tuple[int, int]]:
    """The (weekday, ordinal) pairs a rule may name for this date: weekly, nth and nth-from-last."""
    last = calendar.monthrange(day.year, day.month)[1]
    weekday = day.weekday()
    return frozenset({(weekday, 0), (weekday, (day.day - 1) // 7 + 1), (weekday, -((last - day.day) // 7 + 1))})


@lru_cache(maxsize=16384)  # (schedule, day): a directory has a few dozen schedules, queries a few days
def _spans(hours: _Hours, day: date) -> tuple[tuple[int, int], ...]:
    """Openings from the day before `day` through the first later day that has any, in minutes from
    `day`'s midnight, sorted, with overlapping and back-to-back ones (24:00 then 00:00) joined."""
    found: list[tuple[int, int]] = []
    for offset in range(-1, HORIZON_DAYS + 1):
        keys, base = _day_keys(day + timedelta(days=offset)), offset * 1440
        that_day = [(base + opens, base + closes) for days, opens, closes in hours if days & keys]
        found += that_day
        if offset > 0 and that_day:
            break
    joined: list[tuple[int, int]] = []
    for opens, closes in sorted(found):
        if joined and opens <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(closes, joined[-1][1]))
        else:
            joined.append((opens, closes))
    return tuple(joined)


@dataclass(frozen=True, slots=True)
class _Moment:
    """The query's local date and minute of the day; times count minutes from today's midnight."""

    day: date
    minute: int

    @classmethod
    def at(cls, now: datetime, tz: ZoneInfo) -> _Moment:
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        local = now.astimezone(tz)
        return cls(local.date(), local.hour * 60 + local.minute)

    def standing(self, hours: _Hours) -> tuple[int, int]:
        """(hours rank, minutes until it opens) at this moment."""
        if not hours:
            return HOURS_UNKNOWN, 0
        minute = self.minute
        for opens, closes in _spans(hours, self.day):
            if closes > minute:
                if opens <= minute:
                    return OPEN_NOW, 0
                days = opens // 1440
                return (OPENS_TODAY if days == 0 else HOURS_UNKNOWN + days), opens - minute
        return NEVER, 0

    def open_until(self, hours: _Hours) -> int:
        """When the opening that holds now ends (for a place open now)."""
        return next(closes for opens, closes in _spans(hours, self.day) if opens <= self.minute < closes)


def clock_label(minute: int) -> str:
    """A time of day from minutes after midnight: 9am, 8:30am, 5pm."""
    hour, rest = divmod(minute % 1440, 60)
    suffix = "am" if hour < 12 else "pm"
    hour = hour % 12 or 12
    return f"{hour}{suffix}" if rest == 0 else f"{hour}:{rest:02d}{suffix}"


# ---------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class _Row:
    """A service as the ranking sees it, precomputed at load."""

    service: Service
    priority: int
    hours: int  # index into Directory._hours (equal schedules share one entry)
    tag_mask: int
    languages: frozenset[str]
    national: bool


@dataclass(frozen=True, slots=True)
class _Shelf:
    """One category's active services (by id) and what a distance pass from an origin needs."""

    rows: tuple[_Row, ...]
    points: PointSet  # the distinct (lat, lon) of the category's locations
    where: tuple[tuple[int, ...], ...]  # per row: index into points of each location, in order
    groups: tuple[tuple[int, ...], ...]  # row indices by priority, highest first


@dataclass(frozen=True, slots=True)
class _Order:
    """A shelf ranked from one origin (or none): by priority, then distance."""

    positions: tuple[int, ...]  # row indices, best first
    distance: list[float]  # per row: miles to the nearest location; NEAR_MILES for a line with no place
    nearest: dict[int, int]  # row index -> index of its nearest location, for rows with several
    located: bool  # False: no origin, so every local row sits at distance 0


def _dialable(phone: Phone) -> str:
    """The phone as texted: 816-474-6750, or 816-474-6750 ext. 12 (a phone turns either into a link)."""
    digits = phone.number[2:]
    number = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"{number} ext. {phone.extension}" if phone.extension else number


class Directory:
    """The loaded directory: categories, every service, and ranking by need, tags, hours, place and language."""

    def __init__(
        self,
        categories: Iterable[Category],
        services: Iterable[Service],
        *,
        sample_data: bool = False,
        service_area_miles: float = SERVICE_AREA_MILES,
    ):
        self.categories: dict[str, Category] = {c.key: c for c in categories}
        self.services: list[Service] = list(services)
        self.sample_data = sample_data
        self.service_area_miles = service_area_miles
        self._by_id = {s.id: s for s in self.services}
        self._tag_bits: dict[str, int] = {}
        self._hours: list[_Hours] = []  # equal schedules share one entry
        self._hours_index: dict[_Hours, int] = {}
        self._rows: dict[str, _Row] = {}  # by service id: one row for all the service's categories
        self._shelves: dict[str, _Shelf] = {}  # by category, built on first use (or by warm())
        self._building = threading.Lock()
        self._active = active = sorted((s for s in self.services if s.status == "active"), key=lambda s: s.id)
        # per instance: each category ranked from an origin, and split by a query's tags
        self._ordered = lru_cache(maxsize=ORDERS_CACHED)(self._ordered_uncached)
        self._split = lru_cache(maxsize=2 * ORDERS_CACHED)(self._split_uncached)
        self._own_zips = own_zips = Counter(loc.addresses[0].postal_code[:5] for s in active for loc in s.locations)
        self.center = _center(own_zips)
        # the ZIP most of its places are in: where `peaceline check` measures the lists from
        self.home_zip = own_zips.most_common(1)[0][0] if own_zips else None

    def warm(self) -> None:
        """Build every category's shelf and rank it from the ZIPs the directory's services are in, where
        residents most often are, so the first query from one of them is as fast as the rest.

        Not part of loading: a process that answers residents calls it once (Runtime.build, so `serve`
        runs it in the master before it forks); `check` and imports, which only validate, need not.
        """
        with paused_gc():
            for key in self.categories:
                self._shelf_of(key)
            for zip_code, _count in self._own_zips.most_common(ORDERS_CACHED // max(1, len(self.categories))):
                for key in self.categories:
                    self._ordered(key, zip_centroid(zip_code))

    def serves(self, zip_code: str | None) -> bool:
        """False for a known ZIP farther than `service_area_miles` from the centre of the directory's own ZIPs.

        An unknown or missing ZIP cannot be placed, so it is not turned away.
        """
        origin = zip_centroid(zip_code) if zip_code else None
        if origin is None or self.center is None:
            return True
        return miles_between(self.center, origin) <= self.service_area_miles

    def _shelf_of(self, category: str) -> _Shelf:
        """The category's active services, ready to rank: built on its first query, or by warm()."""
        shelf = self._shelves.get(category)
        if shelf is None:
            with self._building:  # a threaded server may ask twice at once; rows and hours are shared
                shelf = self._shelves.get(category)
                if shelf is None:
                    members = [(self._row(s), s) for s in self._active if category in s.categories]
                    shelf = self._shelves[category] = _shelf(members)
        return shelf

    def _row(self, service: Service) -> _Row:
        row = self._rows.get(service.id)
        if row is not None:
            return row
        hours = frozenset(_rule(s.byday, s.opens_at, s.closes_at) for s in service.schedules)
        if hours not in self._hours_index:
            self._hours_index[hours] = len(self._hours)
            self._hours.append(hours)
        row = self._rows[service.id] = _Row(
            service=service,
            priority=service.x_bot.priority,
            hours=self._hours_index[hours],
            tag_mask=self._mask(service.x_bot.tags, grow=True),
            languages=frozenset(lang.code.split("-")[0] for lang in service.languages) or frozenset({"en"}),
            national=service.x_bot.national,
        )
        return row

    def get(self, service_id: str) -> Service | None:
        return self._by_id.get(service_id)

    def stale(self, today: date, max_age_days: int) -> list[Service]:
        """Services never verified, or whose `assured_date` is older than `max_age_days` (RESOURCE_MAX_AGE_DAYS)."""
        limit = today - timedelta(days=max_age_days)
        return [s for s in self.services if s.assured_date is None or s.assured_date < limit]

    def rank(
        self,
        category: str,
        *,
        zip_code: str | None,
        now: datetime,
        tz: ZoneInfo,
        lang: str = "en",
        limit: int = 3,
        tags: Sequence[str] = (),
        phone_only: bool = False,
    ) -> list[Match]:
        """Up to `limit` active services of `category`, best first.

        Order: a tag match (when tags are given), priority, hours at `now` (open now, opens
        later today, hours unknown, then by the day it opens next), distance from the ZIP
        centroid in half-mile steps (lines with no place count as NEAR_MILES), the sooner
        opening, the resident's language, local before national, exact distance.
        `phone_only` (a ZIP outside the service area): only the lines with no place, national first.
        """
        if category not in self.categories:
            raise ValueError(f"unknown category {category!r}")
        moment = _Moment.at(now, tz)
        origin = zip_centroid(zip_code) if zip_code and not phone_only else None
        order = self._ordered(category, origin)
        tagged, rest = self._split(category, origin, self._mask(tags, grow=False), phone_only)
        shelf = self._shelf_of(category)
        states: dict[int, tuple[int, int]] = {}
        pick = _Pick(shelf.rows, self._hours, order.distance, moment, lang, phone_only, states)
        picked = pick.best(tagged, limit)
        picked += pick.best(rest, limit - len(picked))
        return [self._match(shelf, order, j, moment, states) for j in picked]

    def _mask(self, tags: Iterable[str], *, grow: bool) -> int:
        mask = 0
        for tag in tags:
            if grow:
                self._tag_bits.setdefault(tag, 1 << len(self._tag_bits))
            mask |= self._tag_bits.get(tag, 0)
        return mask

    def _ordered_uncached(self, category: str, origin: tuple[float, float] | None) -> _Order:
        shelf = self._shelf_of(category)
        nearest: dict[int, int] = {}
        if origin is None:  # no ZIP: every local service ties at 0, ahead of the lines with no place
            distance = [0.0 if where else NEAR_MILES for where in shelf.where]
        else:
            miles = shelf.points.miles_from(origin)
            distance = [miles[where[0]] if where else NEAR_MILES for where in shelf.where]
            for j, where in enumerate(shelf.where):
                if len(where) > 1:
                    nearest[j] = min(range(len(where)), key=lambda k: miles[where[k]])
                    distance[j] = miles[where[nearest[j]]]
        key = distance.__getitem__  # sorts in C; stable, so ties keep id order
        positions = tuple(j for group in shelf.groups for j in sorted(group, key=key))
        return _Order(positions, distance, nearest, located=origin is not None)

    def _split_uncached(
        self, category: str, origin: tuple[float, float] | None, tag_mask: int, phone_only: bool
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(positions of rows carrying one of the query's tags, the other positions), each in rank order."""
        positions = self._ordered(category, origin).positions
        if phone_only:
            where = self._shelf_of(category).where
            positions = tuple(j for j in positions if not where[j])
        if not tag_mask:
            return (), positions
        rows = self._shelf_of(category).rows
        return (
            tuple(j for j in positions if rows[j].tag_mask & tag_mask),
            tuple(j for j in positions if not rows[j].tag_mask & tag_mask),
        )

    def _match(
        self, shelf: _Shelf, order: _Order, j: int, moment: _Moment, states: dict[int, tuple[int, int]]
    ) -> Match:
        row = shelf.rows[j]
        service, hours = row.service, self._hours[row.hours]
        standing, wait = states[row.hours]
        open_until = opens = None
        if standing == OPEN_NOW:
            end = moment.open_until(hours)
            open_until = clock_label(end) if end - moment.minute < 1440 else None
        elif hours and standing != NEVER:
            at = moment.minute + wait
            opens = Opening(days=at // 1440, on=moment.day + timedelta(days=at // 1440), at=clock_label(at))
        confidential = service.x_bot.confidential
        address = None
        if service.locations and not confidential:
            first = service.locations[order.nearest.get(j, 0)].addresses[0]
            # street and ZIP: the city is the program's own (and a ZIP tells Kansas City, KS from MO),
            # and 13 characters a place keep a list of three in two SMS segments
            address = f"{first.address_1}, {first.postal_code[:5]}"
        placed = order.located and bool(shelf.where[j])
        return Match(
            service_id=service.id,
            name=service.name,
            phone=service.x_bot.short_number or _dialable(service.phones[0]),
            address=address,
            open_now=standing == OPEN_NOW if hours else None,
            open_until=open_until,
            opens=opens,
            distance_miles=round(order.distance[j], 1) if placed else None,
            confidential=confidential,
        )


@dataclass(frozen=True, slots=True)
class _Pick:
    """One query's walk over a shelf's rows, already in order of priority, then distance."""

    rows: Sequence[_Row]
    hours: list[_Hours]
    distance: list[float]
    moment: _Moment
    lang: str
    national_first: bool
    states: dict[int, tuple[int, int]]  # hours index -> (hours rank, minutes until open), filled as met

    def best(self, positions: Sequence[int], limit: int) -> list[int]:
        """The best `limit` of `positions` at this moment, in this language.

        Within one priority, each hours rank's rows arrive nearest first, so a rank's
        first `limit` rows (plus any more in the same distance step, which the tiebreak may
        reorder) are its best. Once enough rows are open now and the walk is past their
        step, nothing further down can beat them, and it stops.
        """
        picked: list[int] = []
        rows, distance, states, i, count = self.rows, self.distance, self.states, 0, len(positions)
        while i < count and len(picked) < limit:
            priority, want = rows[positions[i]].priority, limit - len(picked)
            buckets: dict[int, list[int]] = {}  # hours rank -> row indices
            full_at: dict[int, int] = {}  # hours rank -> distance step of its last needed row
            while i < count:
                j = positions[i]
                row, step = rows[j], int(distance[j] / DISTANCE_STEP)
                if row.priority != priority:
                    break
                if step > full_at.get(OPEN_NOW, step):
                    i = count
                    break
                i += 1
                state = states.get(row.hours)
                if state is None:
                    state = states[row.hours] = self.moment.standing(self.hours[row.hours])
                bucket = buckets.setdefault(state[0], [])
                if len(bucket) < want or step == full_at.get(state[0]):
                    bucket.append(j)
                    if len(bucket) == want:
                        full_at[state[0]] = step
            for standing in sorted(buckets):
                picked += sorted(buckets[standing], key=self._tiebreak)[: limit - len(picked)]
        return picked

    def _tiebreak(self, j: int) -> tuple:
        """Within one priority and hours rank: distance step, sooner open, language served, local
        before national (national first for a resident outside the area), miles."""
        row, miles = self.rows[j], self.distance[j]
        return (
            int(miles / DISTANCE_STEP),
            self.states[row.hours][1],
            self.lang not in row.languages,
            row.national != self.national_first,
            miles,
        )


def _shelf(members: list[tuple[_Row, Service]]) -> _Shelf:
    points: dict[tuple[float, float], int] = {}
    where = tuple(tuple(points.setdefault(_point(loc), len(points)) for loc in s.locations) for _r, s in members)
    by_priority: dict[int, list[int]] = {}
    for j, (row, _s) in enumerate(members):
        by_priority.setdefault(row.priority, []).append(j)
    groups = tuple(tuple(by_priority[p]) for p in sorted(by_priority, reverse=True))
    return _Shelf(rows=tuple(r for r, _s in members), points=PointSet(points), where=where, groups=groups)


def _center(zips: Iterable[str]) -> tuple[float, float] | None:
    """The mean of the centroids of these ZIPs (the directory's own); None when none is known."""
    points = [point for point in map(zip_centroid, zips) if point]
    if not points:
        return None
    return sum(lat for lat, _lon in points) / len(points), sum(lon for _lat, lon in points) / len(points)


def _point(location: Location) -> tuple[float, float]:
    if location.latitude is not None and location.longitude is not None:
        return location.latitude, location.longitude
    centroid = zip_centroid(location.addresses[0].postal_code)
    if centroid is None:  # load_directory reports this, with its line, before building
        raise ValueError(f"cannot place location: unknown postal_code {location.addresses[0].postal_code}")
    return centroid


# ---------------------------------------------------------------- loading and error reports


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk build, back as it was after.

    Loading 10,000 services allocates about a million containers that all stay alive; each
    allocation threshold crossed starts a collection that walks them again, which took two
    thirds of the load's time. What the build discards is freed by reference counting anyway.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():  # unfreeze would also release what a caller froze (serve, before forking)
            gc.freeze()  # then unfreeze: what the build kept moves to the oldest generation, not re-walked as young
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def load_directory(path: Path, *, service_area_miles: float = SERVICE_AREA_MILES) -> Directory:
    """Read, validate and index resources.yaml; raise DirectoryError naming file, entry and line.

    The ranking caches start empty: a process that answers residents calls `Directory.warm()`.
    """
    with paused_gc():
        return _load(Path(path), service_area_miles)


def _load(path: Path, service_area_miles: float) -> Directory:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DirectoryError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from err
    try:
        # A Rust YAML 1.2 parser: a 10,000-service directory loads in well under a second,
        # where PyYAML's C loader takes about ten. PyYAML is kept for error line numbers.
        raw = yaml_rs.loads(text)
    except yaml_rs.YAMLDecodeError as err:
        found = re.search(r"line (\d+)", str(err))
        problem = str(err).strip().splitlines()[-1]
        raise DirectoryError(f"{path}:{found.group(1) if found else 1}: not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise DirectoryError(f"{path}:1: expected a mapping with spec_version, categories and services")
    try:
        parsed = DirectoryFile.model_validate(raw)
    except ValidationError as err:
        issues = [(e["loc"], _message(e)) for e in err.errors()]
        raise DirectoryError(_report(path, text, raw, issues)) from None
    issues = _cross_check(parsed)
    if issues:
        raise DirectoryError(_report(path, text, raw, issues))
    return Directory(
        parsed.categories, parsed.services, sample_data=parsed.sample_data, service_area_miles=service_area_miles
    )


def _message(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] != "value_error" and isinstance(value, (str, int, float, date)) and not isinstance(value, bool):
        message += f" (got {value!r})"
    return message


def _cross_check(parsed: DirectoryFile) -> list[tuple[tuple, str]]:
    """What one entry alone cannot show: duplicates, names missing a language, unknown categories,
    unplaceable locations. The categories (the needs) and their languages are the file's own."""
    issues: list[tuple[tuple, str]] = []
    seen_keys: set[str] = set()
    languages = list(parsed.categories[0].name) if parsed.categories else []
    for i, category in enumerate(parsed.categories):
        if category.key in seen_keys:
            issues.append((("categories", i, "key"), f"duplicate category {category.key!r}"))
        seen_keys.add(category.key)
        missing = [lang for lang in languages if lang not in category.name]
        if missing:
            issues.append((("categories", i, "name"), f"missing translation(s): {', '.join(missing)}"))
    if not seen_keys:
        issues.append((("categories",), "no categories: list the needs the line answers"))
    first_seen: dict[str, int] = {}
    for i, service in enumerate(parsed.services):
        for j, key in enumerate(service.categories):
            if key not in seen_keys:
                known = ", ".join(c.key for c in parsed.categories)
                issues.append((("services", i, "categories", j), f"unknown category {key!r} (use {known})"))
        if service.id in first_seen:
            first = first_seen[service.id] + 1
            issues.append((("services", i, "id"), f"duplicate id {service.id!r} (first used by service #{first})"))
        first_seen.setdefault(service.id, i)
        for j, location in enumerate(service.locations):
            if location.latitude is None and zip_centroid(location.addresses[0].postal_code) is None:
                where = ("services", i, "locations", j, "addresses", 0, "postal_code")
                issues.append((where, "unknown postal_code: give latitude and longitude for this location"))
    return issues


def _report(path: Path, text: str, raw: dict, issues: list[tuple[tuple, str]]) -> str:
    """One line per issue: `file:line: entry: field: message` (the line found by re-reading with marks)."""
    root = yaml.compose(text, Loader=yaml.CSafeLoader)
    lines = []
    for loc, message in issues[:MAX_REPORTED]:
        field = ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in loc[2:]).replace(".[", "[")
        line = line_of(root, loc, at_value=True) or 1
        lines.append(f"{path}:{line}: {_entry(raw, loc)}: {field + ': ' if field else ''}{message}")
    if len(issues) > MAX_REPORTED:
        lines.append(f"... and {len(issues) - MAX_REPORTED} more")
    return "\n".join(lines)


def _entry(raw: dict, loc: tuple) -> str:
    """service 'harvesters-pantry', or service #4 (no id) by position when it has none."""
    if len(loc) < 2 or not isinstance(loc[1], int):
        return str(loc[0]) if loc else "file"
    section, index = loc[0], loc[1]
    noun, field = ("category", "key") if section == "categories" else ("service", "id")
    items = raw.get(section)
    item = items[index] if isinstance(items, list) else None
    name = item.get(field) if isinstance(item, dict) else None
    return f"{noun} {name!r}" if isinstance(name, str) else f"{noun} #{index + 1} (no {field})"
