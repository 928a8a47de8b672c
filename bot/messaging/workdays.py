"""When the office is open: OFFICE_HOURS on working days (holidays excepted), in the program's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import OfficeHours, Settings

LOOK_AHEAD_DAYS = 60  # a run of holidays longer than this is a configuration mistake


class Workdays:
    def __init__(self, hours: OfficeHours, holidays: frozenset[date], tz: ZoneInfo) -> None:
        self.hours, self.holidays, self.tz = hours, holidays, tz

    @classmethod
    def from_settings(cls, settings: Settings) -> Workdays:
        return cls(settings.office_hours, settings.holidays, settings.program_timezone)

    def working(self, day: date) -> bool:
        return day.weekday() in self.hours.days and day not in self.holidays

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(self.tz)
        return self.working(local.date()) and self.hours.opens <= local.time() < self.hours.closes

    def next_open(self, now: datetime) -> datetime | None:
        """The next time the office opens after `now` (local time); None if never in LOOK_AHEAD_DAYS."""
        local = now.astimezone(self.tz)
        day = local.date() if local.time() < self.hours.opens else local.date() + timedelta(days=1)
        for _ in range(LOOK_AHEAD_DAYS):
            if self.working(day):
                return datetime.combine(day, self.hours.opens, tzinfo=self.tz)
            day += timedelta(days=1)
        return None
