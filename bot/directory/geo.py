"""ZIP code centroids and distances, offline (the `zipcodes` package ships the data)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from functools import lru_cache

import zipcodes

EARTH_RADIUS_MILES = 3958.7613
_ZIP = re.compile(r"(\d{5})(?:-\d{4})?")


def _zip5(zip_code: str) -> str | None:
    """The five-digit ZIP of "64124" or "64124-1234" (surrounding blanks ignored), else None."""
    match = _ZIP.fullmatch(zip_code.strip()) if isinstance(zip_code, str) else None
    return match.group(1) if match else None


@lru_cache(maxsize=4096)
def _record(zip5: str) -> dict | None:
    found = zipcodes.matching(zip5)
    return found[0] if found else None


@lru_cache(maxsize=65536)  # a directory's locations name a few dozen ZIPs, thousands of times over
def zip_centroid(zip_code: str) -> tuple[float, float] | None:
    """(latitude, longitude) of the ZIP's centroid, or None for an unknown or malformed ZIP."""
    zip5 = _zip5(zip_code)
    record = _record(zip5) if zip5 else None
    if not record or not record.get("lat") or not record.get("long"):
        return None
    return float(record["lat"]), float(record["long"])


def zip_timezone(zip_code: str) -> str | None:
    """IANA time zone of the ZIP ("America/Chicago"), or None when unknown."""
    zip5 = _zip5(zip_code)
    record = _record(zip5) if zip5 else None
    return (record or {}).get("timezone") or None


def miles_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance in miles between two (lat, lon) points."""
    return PointSet([b]).miles_from(a)[0]


class PointSet:
    """Many (lat, lon) points, prepared once for repeated haversine passes from different origins."""

    def __init__(self, points: Iterable[tuple[float, float]]):
        self._trig = tuple((math.radians(lat), math.radians(lon), math.cos(math.radians(lat))) for lat, lon in points)

    def miles_from(self, origin: tuple[float, float]) -> list[float]:
        """miles_between(origin, p) for every point p, in order."""
        lat1, lon1 = math.radians(origin[0]), math.radians(origin[1])
        cos1, diameter = math.cos(lat1), 2 * EARTH_RADIUS_MILES
        sin, asin, sqrt = math.sin, math.asin, math.sqrt  # local names: this runs once per point
        return [
            diameter * asin(min(1.0, sqrt(sin((lat2 - lat1) / 2) ** 2 + cos1 * cos2 * sin((lon2 - lon1) / 2) ** 2)))
            for lat2, lon2, cos2 in self._trig
        ]
