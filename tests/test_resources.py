"""resources.yaml: validation, error reports (file, entry, line) and ranking."""

from __future__ import annotations

import gc
import importlib.util
import random
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
import yaml

from bot.directory.geo import zip_centroid
from bot.directory.resources import DirectoryError, Match, Opening, load_directory
from bot.messaging.phones import BadNumber, regional_e164

ROOT = Path(__file__).resolve().parents[1]
CATEGORY_KEYS = tuple(load_directory(ROOT / "resources.yaml").categories)  # the shipped needs
KC = ZoneInfo("America/Chicago")
MONDAY_10AM = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # Monday 30 Nov 2026, 10:00 in KC
MONDAY_7AM = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
MONDAY_6PM = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
SUNDAY_11AM = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
TUESDAY_8_52PM = datetime(2026, 12, 1, 20, 52, tzinfo=KC)
WEEKDAYS = "MO,TU,WE,TH,FR"
EVERY_DAY = "MO,TU,WE,TH,FR,SA,SU"


# -- building small directories ---------------------------------------------------------------


def categories() -> list[dict]:
    return [
        {
            "key": key,
            "taxonomy_term": {"code": key.upper(), "name": key.title(), "taxonomy": "211 LA"},
            "name": {"en": key.title(), "es": key.title()},
        }
        for key in CATEGORY_KEYS
    ]


def service(
    id: str,
    *,
    zip_code: str | None = "64124",
    category: str = "food",
    byday: str | None = WEEKDAYS,
    opens: str = "09:00",
    closes: str = "17:00",
    **fields,
) -> dict:
    """A valid service; `zip_code=None` makes it a line with no location, `byday=None` one with no hours."""
    x_bot = fields.pop("x_bot", {})
    entry = {
        "id": id,
        "name": f"Service {id}",
        "description": "Helps.",
        "status": "active",
        "organization": {"name": f"Org {id}"},
        "categories": [category],
        "phones": [{"number": "+18164746750"}],
        "languages": [{"code": "en"}],
        "assured_date": "2026-11-01",
        "x_bot": x_bot,
    }
    if zip_code:
        entry["locations"] = [
            {
                "addresses": [
                    {
                        "address_1": f"{len(id)}00 Independence Ave",
                        "city": "Kansas City",
                        "state_province": "MO",
                        "postal_code": zip_code,
                        "country": "US",
                    }
                ]
            }
        ]
    if byday:
        entry["schedules"] = [{"freq": "WEEKLY", "byday": byday, "opens_at": opens, "closes_at": closes}]
    entry.update(fields)
    return entry


def write(tmp_path: Path, services: list[dict], name: str = "resources.yaml") -> Path:
    path = tmp_path / name
    document = {"spec_version": "3.0", "sample_data": False, "categories": categories(), "services": services}
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def directory(tmp_path: Path, *services: dict):
    return load_directory(write(tmp_path, list(services)))


def ids(matches: list[Match]) -> list[str]:
    return [m.service_id for m in matches]


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing `needle`."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def error_for(path: Path) -> str:
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    return str(caught.value)


# -- the shipped sample directory -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_directory(ROOT / "resources.yaml")


def test_shipped_file_validates_and_says_it_is_sample_data(shipped):
    head = (ROOT / "resources.yaml").read_text().split("spec_version")[0]
    assert shipped.sample_data is True
    assert "SAMPLE DATA" in head and "verify" in head.lower()
    assert set(shipped.categories) == set(CATEGORY_KEYS)
    assert all({"en", "es"} <= set(c.name) for c in shipped.categories.values())


def test_shipped_file_has_at_least_four_active_services_per_category(shipped):
    counts = Counter(key for s in shipped.services if s.status == "active" for key in s.categories)
    assert all(counts[key] >= 4 for key in CATEGORY_KEYS), counts


def test_shipped_file_carries_the_national_lines(shipped):
    numbers = {p.number for s in shipped.services for p in s.phones}
    assert {"+18007997233", "+18002221222", "+18006624357", "+18002738255"} <= numbers
    short = {s.x_bot.short_number for s in shipped.services}
    assert {"988", "211"} <= short
    dv = next(s for s in shipped.services if "+18007997233" in {p.number for p in s.phones})
    assert "88788" in dv.description and dv.x_bot.national


def test_shipped_phones_are_e164_and_confidential_services_have_no_address(shipped):
    for s in shipped.services:
        assert all(re.fullmatch(r"\+1[2-9]\d{9}", p.number) for p in s.phones), s.id
        if s.x_bot.confidential:
            assert not s.locations, s.id
    assert any(s.x_bot.confidential for s in shipped.services if "safety" in s.categories)


def test_shipped_spanish_services_and_verification_dates(shipped):
    spanish = [s for s in shipped.services if "es" in {lang.code for lang in s.languages}]
    assert len(spanish) >= 10
    assert all("en" in {lang.code for lang in s.languages} for s in spanish)
    stale = shipped.stale(date(2026, 11, 30), 180)
    assert 1 <= len(stale) <= 2  # most were verified within 180 days, one or two on purpose not
    assert len(shipped.services) == len({s.id for s in shipped.services})


@pytest.mark.parametrize("category", CATEGORY_KEYS)
def test_shipped_directory_answers_every_category_in_the_northeast(shipped, category):
    for now in (MONDAY_10AM, SUNDAY_11AM):
        matches = shipped.rank(category, zip_code="64124", now=now, tz=KC, lang="es")
        assert len(matches) == 3
        assert all(m.phone for m in matches)


def test_shipped_confidential_shelter_never_gives_its_address(shipped):
    matches = shipped.rank("safety", zip_code="64124", now=SUNDAY_11AM, tz=KC, limit=10)
    rose = next(m for m in matches if m.service_id == "rose-brooks-hotline")
    assert rose.confidential and rose.address is None and rose.distance_miles is None
    assert rose.phone == "816-861-6100"


@pytest.mark.parametrize("category", CATEGORY_KEYS)
def test_shipped_lists_put_open_ones_first_then_the_soonest_to_open(shipped, category):
    # every half hour of a week, from the Northeast: never a closed place above an open one of the
    # same priority, nor one that opens later above one that opens sooner
    start = datetime(2026, 11, 30, tzinfo=KC)
    for half_hours in range(7 * 48):
        now = start + timedelta(minutes=30 * half_hours)
        matches = shipped.rank(category, zip_code="64124", now=now, tz=KC, limit=6)
        keys = [
            (-shipped.get(m.service_id).x_bot.priority, not m.open_now, m.opens.days if m.opens else 0) for m in matches
        ]
        assert keys == sorted(keys), (category, now, list(zip(ids(matches), keys, strict=False)))


def test_shipped_food_at_8_52pm_is_the_open_one_then_pantries_that_open_tomorrow(shipped):
    matches = shipped.rank("food", zip_code="64124", now=TUESDAY_8_52PM, tz=KC)
    assert matches[0].service_id == "city-union-mission-shelter" and matches[0].open_now
    assert all(m.opens and m.opens.days == 1 for m in matches[1:])  # not the second-Saturday distribution
    assert "harvesters-northeast-mobile" not in ids(matches)


@pytest.mark.parametrize("now", [MONDAY_10AM, TUESDAY_8_52PM, SUNDAY_11AM])
def test_shipped_rent_help_comes_before_shelters(shipped, now):
    matches = shipped.rank("housing", zip_code="64124", now=now, tz=KC, tags=["rent", "utilities"])
    assert ids(matches)[:2] == ["catholic-charities-rent-utility", "united-way-211"]


def test_shipped_directory_out_of_the_area_gives_only_lines_to_call(shipped):
    assert shipped.serves("64124") and not shipped.serves("90210")

    def phone(category):
        return shipped.rank(
            category,
            zip_code="90210",
            now=MONDAY_10AM,
            tz=KC,
            phone_only=True,
        )

    assert ids(phone("food")) == ["united-way-211"]
    assert ids(phone("health")) == ["lifeline-988", "poison-control", "united-way-211"]
    assert ids(phone("safety"))[:2] == ["rose-brooks-hotline", "national-dv-hotline"]  # priority, then national
    for category in CATEGORY_KEYS:
        assert all(m.address is None and m.distance_miles is None for m in phone(category))


# -- the service area -----------------------------------------------------------------------------


def test_service_area_is_measured_from_the_centre_of_the_directory_own_zips(tmp_path):
    services = [
        service("northeast", zip_code="64124"),
        service("downtown", zip_code="64106"),
        service("line", zip_code=None),
        service("gone", zip_code="64063", status="defunct"),
    ]
    found = directory(tmp_path, *services)
    (lat1, lon1), (lat2, lon2) = zip_centroid("64124"), zip_centroid("64106")
    assert found.center == pytest.approx(((lat1 + lat2) / 2, (lon1 + lon2) / 2))
    assert found.serves("64124") and found.serves("64050")  # Independence, about 8 miles
    assert not found.serves("64063") and not found.serves("90210")  # Lee's Summit, about 17 miles
    assert found.serves(None) and found.serves("00000")  # cannot be placed, so not turned away
    wider = load_directory(write(tmp_path, services, "wider.yaml"), service_area_miles=20)
    assert wider.serves("64063") and not wider.serves("90210")


def test_phone_only_gives_the_lines_with_no_place_national_first(tmp_path):
    found = directory(
        tmp_path,
        service("a-local", zip_code="64124"),
        service("b-regional", zip_code=None),
        service("c-national", zip_code=None, x_bot={"national": True}),
        service("d-tagged-regional", zip_code=None, x_bot={"tags": ["pantry"]}),
    )
    query = dict(zip_code="90210", now=MONDAY_10AM, tz=KC, limit=5)
    assert ids(found.rank("food", **query)) == ["b-regional", "d-tagged-regional", "c-national", "a-local"]
    assert ids(found.rank("food", phone_only=True, **query)) == ["c-national", "b-regional", "d-tagged-regional"]
    assert ids(found.rank("food", phone_only=True, tags=["pantry"], **query)) == [
        "d-tagged-regional",
        "c-national",
        "b-regional",
    ]


# -- validation errors name the file, the entry and the line ------------------------------------


def test_unknown_category_key_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, [service("ok"), service("typo", categories=["fod"])])
    message = error_for(path)
    assert f"{path}:{line_of(path, '- fod')}:" in message
    assert "service 'typo': categories[0]: unknown category 'fod'" in message


def test_missing_name_names_the_entry_and_its_line(tmp_path):
    nameless = service("no-name")
    del nameless["name"]
    path = write(tmp_path, [service("first"), nameless])
    message = error_for(path)
    assert f"{path}:{line_of(path, 'id: no-name')}: service 'no-name': name: Field required" in message


def test_entry_without_id_is_named_by_its_position(tmp_path):
    anonymous = service("x")
    del anonymous["id"]
    path = write(tmp_path, [service("first"), service("second"), anonymous])
    message = error_for(path)
    assert "service #3 (no id): id: Field required" in message
    assert f"{path}:{line_of(path, 'name: Service x')}:" in message


def test_bad_phone_is_reported_on_its_line(tmp_path):
    path = write(tmp_path, [service("ok"), service("bad-phone", phones=[{"number": "555-1234"}])])
    message = error_for(path)
    assert f"{path}:{line_of(path, '555-1234')}: service 'bad-phone': phones[0].number:" in message
    assert "not a valid US phone number" in message


def test_duplicate_id_is_reported_on_the_second_use(tmp_path):
    path = write(tmp_path, [service("pantry"), service("other"), service("pantry")])
    message = error_for(path)
    assert f"{path}:{line_of(path, 'id: pantry', occurrence=2)}: service 'pantry': id: duplicate id" in message
    assert "service #1" in message


def test_every_error_is_reported_not_just_the_first(tmp_path):
    path = write(tmp_path, [service("a", phones=[{"number": "123"}]), service("b", status="open")])
    message = error_for(path)
    assert "service 'a'" in message and "service 'b'" in message and "status" in message


def test_invalid_yaml_reports_its_line(tmp_path):
    path = tmp_path / "resources.yaml"
    path.write_text("spec_version: '3.0'\ncategories: [\n  - key: food\nservices: []\n")
    message = error_for(path)
    assert message.startswith(f"{path}:") and "not valid YAML" in message


def test_missing_file_is_a_directory_error(tmp_path):
    assert "cannot read" in error_for(tmp_path / "nowhere.yaml")


def test_a_service_in_a_category_the_file_does_not_define_is_an_error(tmp_path):
    path = tmp_path / "resources.yaml"
    document = {"spec_version": "3.0", "categories": categories()[:5], "services": [service("a", category="safety")]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert "unknown category 'safety' (use housing, food, health, legal, recovery)" in error_for(path)


def test_every_category_is_named_in_the_languages_of_the_first(tmp_path):
    path = tmp_path / "resources.yaml"
    defined = categories()
    del defined[2]["name"]["es"]
    document = {"spec_version": "3.0", "categories": defined, "services": [service("a")]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert "category 'health': name: missing translation(s): es" in error_for(path)


def test_confidential_service_may_not_list_a_location(tmp_path):
    path = write(tmp_path, [service("shelter", x_bot={"confidential": True})])
    assert "confidential service lists no locations" in error_for(path)


def test_unknown_postal_code_needs_coordinates(tmp_path):
    path = write(tmp_path, [service("nowhere", zip_code="00000")])
    message = error_for(path)
    assert f"{path}:{line_of(path, 'postal_code')}: service 'nowhere'" in message and "latitude" in message


@pytest.mark.parametrize(
    ("schedule", "complaint"),
    [
        ({"freq": "WEEKLY", "byday": "MO,XX", "opens_at": "09:00", "closes_at": "17:00"}, "unknown day 'XX'"),
        ({"freq": "MONTHLY", "byday": "SA", "opens_at": "09:00", "closes_at": "11:00"}, "take an ordinal"),
        ({"freq": "WEEKLY", "byday": "MO", "opens_at": "9am", "closes_at": "17:00"}, "not a time of day"),
        ({"freq": "WEEKLY", "byday": "MO", "opens_at": "09:00", "closes_at": "09:00"}, "opens_at equals closes_at"),
        ({"freq": "DAILY", "byday": "MO", "opens_at": "09:00", "closes_at": "17:00"}, "freq"),
    ],
)
def test_bad_schedules_are_rejected(tmp_path, schedule, complaint):
    path = write(tmp_path, [service("s", schedules=[schedule])])
    assert complaint in error_for(path)


def test_unknown_fields_are_rejected_so_typos_surface(tmp_path):
    path = write(tmp_path, [service("s", opening_hours="9-5")])
    assert "opening_hours: Extra inputs are not permitted" in error_for(path)


def test_unquoted_times_and_zips_read_as_written(tmp_path):
    # YAML 1.1 reads 17:00 as the number 1020 and 64124 as an int; the loader turns them back
    path = tmp_path / "resources.yaml"
    path.write_text(
        write(tmp_path, [service("s")])
        .read_text()
        .replace("'09:00'", "9:00")
        .replace("'17:00'", "17:00")
        .replace("'64124'", "64124")
    )
    loaded = load_directory(path).get("s")
    assert (loaded.schedules[0].opens_at, loaded.schedules[0].closes_at) == ("09:00", "17:00")
    assert loaded.locations[0].addresses[0].postal_code == "64124"


def test_phones_are_stored_in_e164_whatever_the_spelling(tmp_path):
    loaded = directory(tmp_path, service("s", phones=[{"number": "(816) 474-6750"}, {"number": "1-800-799-7233"}]))
    assert [p.number for p in loaded.get("s").phones] == ["+18164746750", "+18007997233"]


def test_an_extension_is_part_of_the_phone_texted(tmp_path):
    found = directory(tmp_path, service("s", phones=[{"number": "8164746750", "extension": 12}]))
    assert found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)[0].phone == "816-474-6750 ext. 12"


# -- ranking -------------------------------------------------------------------------------------


def test_open_now_first_then_the_soonest_to_open(tmp_path):
    found = directory(
        tmp_path,
        service("near", zip_code="64124"),  # 0 mi, weekdays 9-5
        service("river-market", zip_code="64106"),  # 1.6 mi, weekdays 9-5
        service("weekend", zip_code="64127", byday="SA,SU", opens="10:00", closes="14:00"),  # 1.3 mi
    )
    rank = lambda now: ids(found.rank("food", zip_code="64124", now=now, tz=KC))  # noqa: E731
    assert rank(MONDAY_10AM) == ["near", "river-market", "weekend"]
    assert rank(SUNDAY_11AM) == ["weekend", "near", "river-market"]
    assert rank(MONDAY_7AM) == ["near", "river-market", "weekend"]  # opening later today beats closed
    # all closed: the two that open tomorrow before the nearer one that opens on Saturday
    assert rank(MONDAY_6PM) == ["near", "river-market", "weekend"]
    friday_6pm = datetime(2026, 12, 4, 18, 0, tzinfo=KC)
    assert rank(friday_6pm) == ["weekend", "near", "river-market"]  # Saturday comes before Monday


def test_soonest_to_open_counts_days_then_distance_then_the_hour(tmp_path):
    found = directory(
        tmp_path,
        service("a-friday-near", zip_code="64124", byday="FR"),
        service("b-tomorrow-far", zip_code="64118"),  # about 7.5 miles, weekdays 9-5
        service("c-tomorrow-late", zip_code="64124", opens="13:00"),
        service("d-tomorrow-early", zip_code="64124", opens="08:00"),
    )
    matches = found.rank("food", zip_code="64124", now=MONDAY_6PM, tz=KC, limit=4)
    assert ids(matches) == ["d-tomorrow-early", "c-tomorrow-late", "b-tomorrow-far", "a-friday-near"]
    tuesday, friday = date(2026, 12, 1), date(2026, 12, 4)
    assert [m.opens for m in matches] == [
        Opening(1, tuesday, "8am"),
        Opening(1, tuesday, "1pm"),
        Opening(1, tuesday, "9am"),
        Opening(4, friday, "9am"),
    ]
    assert all(m.open_now is False and m.open_until is None for m in matches)


def test_match_fields(tmp_path):
    found = directory(tmp_path, service("near", zip_code="64124"), service("far", zip_code="64106"))
    near, far = found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert near == Match(
        service_id="near",
        name="Service near",
        phone="816-474-6750",
        address="400 Independence Ave, 64124",
        open_now=True,
        open_until="5pm",
        opens=None,
        distance_miles=0.0,
        confidential=False,
    )
    assert far.distance_miles == pytest.approx(1.6, abs=0.1)
    sunday = found.rank("food", zip_code="64124", now=SUNDAY_11AM, tz=KC)[0]
    assert (sunday.open_now, sunday.open_until) == (False, None)
    assert sunday.opens == Opening(days=1, on=date(2026, 11, 30), at="9am")


def test_time_is_evaluated_in_the_given_zone_across_daylight_saving(tmp_path):
    found = directory(tmp_path, service("clinic"))
    summer = datetime(2026, 7, 6, 14, 30, tzinfo=UTC)  # Monday 9:30 CDT
    winter = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # Monday 8:30 CST
    assert found.rank("food", zip_code="64124", now=summer, tz=KC)[0].open_now is True
    assert found.rank("food", zip_code="64124", now=winter, tz=KC)[0].open_now is False


def test_priority_beats_hours_and_distance(tmp_path):
    found = directory(
        tmp_path,
        service("near-open", zip_code="64124"),
        service("far-closed-pinned", zip_code="64106", byday="SA", x_bot={"priority": 5}),
    )
    assert ids(found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)) == ["far-closed-pinned", "near-open"]


def test_tags_first_then_the_usual_order(tmp_path):
    found = directory(
        tmp_path,
        service("shelter", zip_code="64124", category="housing", x_bot={"tags": ["shelter"]}),
        service("eviction-far", zip_code="64106", category="housing", x_bot={"tags": ["eviction", "tenant_rights"]}),
        service("rent", zip_code="64123", category="housing", x_bot={"tags": ["rent", "eviction"]}),
    )
    query = dict(zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert ids(found.rank("housing", **query)) == ["shelter", "rent", "eviction-far"]
    assert ids(found.rank("housing", tags=["eviction"], **query)) == ["rent", "eviction-far", "shelter"]
    assert ids(found.rank("housing", tags=["utilities", "shelter"], **query)) == ["shelter", "rent", "eviction-far"]
    assert ids(found.rank("housing", tags=["no-such-tag"], **query)) == ["shelter", "rent", "eviction-far"]


def test_language_decides_between_equally_near_services(tmp_path):
    found = directory(
        tmp_path,
        service("a-english", zip_code="64124"),
        service("b-bilingual", zip_code="64124", languages=[{"code": "en"}, {"code": "es"}]),
        service("c-far-spanish", zip_code="64125", languages=[{"code": "es"}]),
    )
    query = dict(zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert ids(found.rank("food", lang="en", **query)) == ["a-english", "b-bilingual", "c-far-spanish"]
    assert ids(found.rank("food", lang="es", **query)) == ["b-bilingual", "a-english", "c-far-spanish"]


def test_lines_without_a_place_come_after_near_services_and_before_far_ones(tmp_path):
    found = directory(
        tmp_path,
        service("near", zip_code="64123"),  # about 1 mile
        service("far", zip_code="64118"),  # about 7.5 miles
        service(
            "national-line", zip_code=None, byday=EVERY_DAY, opens="00:00", closes="24:00", x_bot={"national": True}
        ),
    )
    matches = found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert ids(matches) == ["near", "national-line", "far"]
    assert matches[1].distance_miles is None and matches[1].address is None
    assert (matches[1].open_now, matches[1].open_until, matches[1].opens) == (True, None, None)  # around the clock


def test_a_regional_hotline_goes_before_a_national_one(tmp_path):
    found = directory(
        tmp_path,
        service("national", zip_code=None, byday=EVERY_DAY, opens="00:00", closes="24:00", x_bot={"national": True}),
        service("regional", zip_code=None, byday=EVERY_DAY, opens="00:00", closes="24:00"),
    )
    assert ids(found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)) == ["regional", "national"]


@pytest.mark.parametrize("zip_code", [None, "00000", "nope"])
def test_without_a_known_zip_local_services_still_come_before_lines(tmp_path, zip_code):
    found = directory(
        tmp_path,
        service("a-line", zip_code=None, x_bot={"national": True}),
        service("b-local", zip_code="64106"),
    )
    matches = found.rank("food", zip_code=zip_code, now=MONDAY_10AM, tz=KC)
    assert ids(matches) == ["b-local", "a-line"]
    assert matches[0].distance_miles is None and matches[0].address == "700 Independence Ave, 64106"


def test_confidential_service_shows_phone_but_no_address(tmp_path):
    found = directory(
        tmp_path,
        service(
            "shelter",
            zip_code=None,
            category="safety",
            byday=EVERY_DAY,
            opens="00:00",
            closes="24:00",
            x_bot={"confidential": True},
        ),
    )
    (match,) = found.rank("safety", zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert match.confidential and match.address is None and match.phone == "816-474-6750"


def test_only_active_services_of_the_category_and_at_most_limit(tmp_path):
    found = directory(
        tmp_path,
        *(service(f"s{i}", zip_code="64124") for i in range(5)),
        service("closed-down", status="temporarily closed"),
        service("gone", status="defunct"),
        service("other-category", category="legal"),
    )
    assert ids(found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)) == ["s0", "s1", "s2"]
    assert len(found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC, limit=10)) == 5
    assert found.rank("recovery", zip_code="64124", now=MONDAY_10AM, tz=KC) == []
    assert found.get("gone").status == "defunct" and found.get("nope") is None


def test_service_in_two_categories_ranks_in_both(tmp_path):
    found = directory(tmp_path, service("both", categories=["food", "housing"]))
    assert ids(found.rank("housing", zip_code="64124", now=MONDAY_10AM, tz=KC)) == ["both"]
    assert ids(found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)) == ["both"]


def test_hours_unknown_rank_between_opening_later_and_closed(tmp_path):
    found = directory(
        tmp_path,
        service("a-closed", zip_code="64124", byday="SA"),
        service("b-unknown", zip_code="64106", byday=None),
        service("c-later", zip_code="64125", opens="13:00", closes="15:00"),
    )
    matches = found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert ids(matches) == ["c-later", "b-unknown", "a-closed"]
    assert (matches[1].open_now, matches[1].open_until, matches[1].opens) == (None, None, None)
    assert (matches[0].open_now, matches[0].opens) == (False, Opening(days=0, on=date(2026, 11, 30), at="1pm"))
    assert matches[2].opens == Opening(days=5, on=date(2026, 12, 5), at="9am")


def test_open_until_and_next_opening(tmp_path):
    split = [
        {"freq": "WEEKLY", "byday": WEEKDAYS, "opens_at": "08:30", "closes_at": "12:00"},
        {"freq": "WEEKLY", "byday": WEEKDAYS, "opens_at": "13:00", "closes_at": "17:00"},
    ]
    back_to_back = [
        {"freq": "WEEKLY", "byday": "MO", "opens_at": "09:00", "closes_at": "12:00"},
        {"freq": "WEEKLY", "byday": "MO", "opens_at": "12:00", "closes_at": "18:00"},
    ]
    found = directory(
        tmp_path,
        service("split", schedules=split),
        service("back-to-back", schedules=back_to_back),
        service("overnight", byday=EVERY_DAY, opens="19:00", closes="07:00"),
        service("fridays", byday="FR", opens="22:00", closes="02:00"),
        service("always", byday=EVERY_DAY, opens="00:00", closes="24:00"),
        service("weekdays-all-day", byday=WEEKDAYS, opens="00:00", closes="24:00"),
    )

    def hours(y: int, m: int, d: int, hh: int, mm: int = 0) -> dict:
        now = datetime(y, m, d, hh, mm, tzinfo=KC)
        return {
            m.service_id: (m.open_now, m.open_until, m.opens)
            for m in found.rank("food", zip_code="64124", now=now, tz=KC, limit=9)
        }

    monday = hours(2026, 11, 30, 10)
    assert monday["split"] == (True, "12pm", None)
    assert monday["back-to-back"] == (True, "6pm", None)  # one opening as the other ends
    assert monday["overnight"] == (False, None, Opening(0, date(2026, 11, 30), "7pm"))
    assert monday["fridays"] == (False, None, Opening(4, date(2026, 12, 4), "10pm"))
    assert monday["always"] == monday["weekdays-all-day"] == (True, None, None)  # more than a day ahead
    lunch = hours(2026, 11, 30, 12, 30)
    assert lunch["split"] == (False, None, Opening(0, date(2026, 11, 30), "1pm"))
    friday = hours(2026, 12, 4, 10)
    assert friday["weekdays-all-day"] == (True, "12am", None)  # closes at midnight
    saturday_1am = hours(2026, 12, 5, 1)
    assert saturday_1am["overnight"] == (True, "7am", None)
    assert saturday_1am["fridays"] == (True, "2am", None)  # Friday night's hours run past midnight
    assert saturday_1am["split"] == (False, None, Opening(2, date(2026, 12, 7), "8:30am"))


def test_after_closing_time_the_next_opening_not_todays_hours(tmp_path):
    found = directory(tmp_path, service("legal-aid", opens="08:30", closes="17:00"))
    (match,) = found.rank("food", zip_code="64124", now=TUESDAY_8_52PM, tz=KC)
    assert (match.open_now, match.open_until) == (False, None)
    assert match.opens == Opening(days=1, on=date(2026, 12, 2), at="8:30am")
    (friday,) = found.rank("food", zip_code="64124", now=datetime(2026, 12, 4, 20, 52, tzinfo=KC), tz=KC)
    assert friday.opens == Opening(days=3, on=date(2026, 12, 7), at="8:30am")


def test_open_until_and_next_opening_agree_with_open_now_all_week(tmp_path):
    # every 45 minutes of a week: an open place is open a minute before `open_until` and closed
    # at it; a closed one is open at its next opening and not a minute before
    split = [
        {"freq": "WEEKLY", "byday": WEEKDAYS, "opens_at": "08:30", "closes_at": "12:00"},
        {"freq": "WEEKLY", "byday": "MO,WE", "opens_at": "13:15", "closes_at": "17:45"},
    ]
    found = directory(
        tmp_path,
        service("split", schedules=split),
        service("overnight", byday="TU,SA", opens="19:00", closes="03:30"),
        service(
            "monthly", schedules=[{"freq": "MONTHLY", "byday": "2SA,-1FR", "opens_at": "09:00", "closes_at": "11:00"}]
        ),
    )

    def at(local: datetime) -> dict[str, Match]:
        now = local.replace(tzinfo=KC)
        return {m.service_id: m for m in found.rank("food", zip_code="64124", now=now, tz=KC, limit=3)}

    def clock(day: date, text: str) -> datetime:
        return datetime.strptime(f"{day} {text.upper()}", "%Y-%m-%d %I:%M%p" if ":" in text else "%Y-%m-%d %I%p")

    start = datetime(2026, 11, 30, 0, 7)
    for k in range(7 * 24 * 60 // 45):
        now = start + timedelta(minutes=45 * k)
        for sid, match in at(now).items():
            if match.open_now:
                if match.open_until:
                    end = clock(now.date(), match.open_until)
                    end += timedelta(days=1) if end <= now else timedelta(0)
                    assert at(end - timedelta(minutes=1))[sid].open_now and not at(end)[sid].open_now, (sid, now)
            else:
                opens = clock(match.opens.on, match.opens.at)
                assert opens > now and (match.opens.on - now.date()).days == match.opens.days, (sid, now)
                assert at(opens)[sid].open_now and not at(opens - timedelta(minutes=1))[sid].open_now, (sid, now)


def test_monthly_schedules_by_ordinal_weekday(tmp_path):
    found = directory(
        tmp_path,
        service(
            "second-saturday",
            schedules=[
                {"freq": "MONTHLY", "byday": "2SA", "opens_at": "09:00", "closes_at": "11:00"},
                {"freq": "MONTHLY", "byday": "-1FR", "opens_at": "16:00", "closes_at": "18:00"},
            ],
        ),
    )

    def at(y, m, d, h):
        return found.rank(
            "food",
            zip_code="64124",
            tz=KC,
            now=datetime(y, m, d, h, tzinfo=KC).astimezone(UTC),
        )[0]

    assert at(2026, 12, 12, 10).open_now is True  # 12 Dec 2026 is the second Saturday
    assert at(2026, 12, 5, 10).opens == Opening(days=7, on=date(2026, 12, 12), at="9am")  # the first
    assert at(2026, 12, 25, 17).open_now is True  # 25 Dec 2026 is the last Friday
    assert at(2026, 12, 18, 17).opens == Opening(days=7, on=date(2026, 12, 25), at="4pm")
    assert at(2026, 12, 26, 10).opens == Opening(days=14, on=date(2027, 1, 9), at="9am")  # into the new year


def test_short_number_is_shown_instead_of_the_phone(tmp_path):
    found = directory(tmp_path, service("lifeline", zip_code=None, x_bot={"national": True, "short_number": 988}))
    assert found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)[0].phone == "988"
    assert "not a valid US short number" in error_for(write(tmp_path, [service("x", x_bot={"short_number": "12"})]))


def test_rank_rejects_a_naive_time_and_an_unknown_category(tmp_path):
    found = directory(tmp_path, service("s"))
    with pytest.raises(ValueError, match="aware"):
        found.rank("food", zip_code="64124", now=datetime(2026, 11, 30, 10), tz=KC)
    with pytest.raises(ValueError, match="unknown category"):
        found.rank("shopping", zip_code="64124", now=MONDAY_10AM, tz=KC)


def test_ranking_many_services_keeps_the_full_order(tmp_path):
    # more rows than the walk needs: it must still find the farthest open service when only it is open
    many = [service(f"closed-{i:02d}", zip_code="64124", byday="SA") for i in range(40)]
    found = directory(tmp_path, *many, service("only-open", zip_code="64118"))
    matches = found.rank("food", zip_code="64124", now=MONDAY_10AM, tz=KC)
    assert ids(matches) == ["only-open", "closed-00", "closed-01"]


def benchmark_module():
    spec = importlib.util.spec_from_file_location("benchmarks_matching", ROOT / "benchmarks" / "matching.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmark_directory_is_valid(tmp_path):
    # benchmarks/matching.py generates its 10,000 services the same way; a small one must load and rank
    bench = benchmark_module()
    names = bench.write_directory(tmp_path / "resources.yaml", 120, seed=3)
    found = load_directory(tmp_path / "resources.yaml")
    assert len(found.services) == len(names) == 120
    for _text, lang, zip_code, now in bench._queries(30, seed=3):
        assert len(found.rank("food", zip_code=zip_code, now=now, tz=KC, lang=lang)) == 3


# -- loading fast: the GC paused, categories built when first asked, warm() for a serving process --------


def test_loading_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    good = write(tmp_path, [service("s")])
    bad = write(tmp_path, [service("s", phones=[{"number": "12"}])], name="bad.yaml")
    load_directory(good)
    error_for(bad)
    assert gc.isenabled()
    gc.disable()
    try:
        load_directory(good)
        error_for(bad)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_loading_keeps_what_a_caller_froze_frozen(tmp_path):
    gc.freeze()  # as serve may before it forks, so the workers share the pages
    try:
        frozen = gc.get_freeze_count()
        load_directory(write(tmp_path, [service("s")]))
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_directory_answers_the_same_warmed_or_not(tmp_path):
    bench = benchmark_module()
    path = tmp_path / "resources.yaml"
    bench.write_directory(path, 160, seed=5)
    cold, warm = load_directory(path), load_directory(path)
    warm.warm()
    for category in reversed(CATEGORY_KEYS):  # the cold one builds its categories in another order
        for _text, lang, zip_code, now in bench._queries(12, seed=5):
            for tags, phone_only in (((), False), (("pantry", "eviction", "hotline"), False), ((), True)):
                asked = {"zip_code": zip_code, "now": now, "lang": lang, "tags": tags, "phone_only": phone_only}
                assert cold.rank(category, tz=KC, **asked) == warm.rank(category, tz=KC, **asked)


def test_after_warm_up_a_query_from_the_directory_own_zips_ranks_nothing_anew(tmp_path):
    found = directory(
        tmp_path,
        service("a", zip_code="64124"),
        service("b", zip_code="64120"),
        service("c", category="legal", zip_code="64124"),
    )
    found.warm()
    ranked = found._ordered.cache_info().misses
    for category in CATEGORY_KEYS:
        for zip_code in ("64124", "64120"):
            found.rank(category, zip_code=zip_code, now=MONDAY_10AM, tz=KC)
    assert found._ordered.cache_info().misses == ranked


def test_the_runtime_warms_its_directory_before_the_first_text(rt):
    ranked = rt.directory._ordered.cache_info().misses
    rt.directory.rank("food", zip_code=rt.directory.home_zip, now=MONDAY_10AM, tz=KC)
    assert ranked > 0
    assert rt.directory._ordered.cache_info().misses == ranked


def test_a_directory_phone_in_e164_is_valid_exactly_when_phonenumbers_says_so():
    # regional_e164 checks a ten-digit US number against phonenumbers' landline pattern first
    rng = random.Random(4)
    numbers = [f"+1{rng.randint(2_000_000_000, 9_999_999_999)}" for _ in range(3000)]
    numbers += ["+18005551234", "+14165551234", "+15555551234", "+18164746750", "+12125550123"]
    for text in numbers:
        expected = phonenumbers.is_valid_number_for_region(phonenumbers.parse(text), "US")
        try:
            accepted = regional_e164(text) == text
        except BadNumber:
            accepted = False
        assert accepted == expected, text
