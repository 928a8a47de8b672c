"""How a resource list reads: hours as they are now, and plain words for a ZIP outside the area.

The engine runs on the real flows and matcher; the directories are small ones built for each
test (tests/test_resources.py helpers) or the shipped one. Time is fixed in each Context.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_resources import directory, service

from bot.config import load_settings
from bot.conversation import engine as eng
from bot.conversation.engine import Context, Engine, Inbound
from bot.conversation.flows import Refer, check_flows, load_flows
from bot.conversation.segments import is_gsm7
from bot.conversation.vocabulary import Vocabulary
from bot.directory.resources import load_directory
from bot.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
KC = ZoneInfo("America/Chicago")
SHIPPED = load_directory(ROOT / "resources.yaml")
FLOWS = load_flows(ROOT / "flows", categories=set(SHIPPED.categories))
VOCABULARY = Vocabulary.from_flows(ROOT / "flows")
FIRST_TEXT = {"en": "I need food", "es": "necesito comida"}


def places(found, now: datetime, lang: str = "en") -> list[str]:
    """What a resident in 64124 reads after asking for food at `now` (local time)."""
    engine = Engine(FLOWS, VOCABULARY.matcher, found, KC, crisis=VOCABULARY.crisis, strict=True)
    out = engine.step(None, Inbound(FIRST_TEXT[lang]), Context(now=now, zip_code="64124"))
    return out.replies


def said(found, now: datetime, lang: str = "en") -> str:
    return "\n".join(places(found, now, lang))


# -- hours as they are now ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang, closed, at_5pm",
    [
        ("en", "Closed now, opens Wed 8:30am", "Open today"),
        ("es", "Cerrado ahora, abre mié 8:30am", "Abierto hoy"),
    ],
)
def test_at_8_52pm_the_list_says_when_it_opens_not_todays_hours(tmp_path, lang, closed, at_5pm):
    found = directory(tmp_path, service("legal-aid", opens="08:30", closes="17:00"))
    text = said(found, datetime(2026, 12, 1, 20, 52, tzinfo=KC), lang)  # a Tuesday
    assert closed in text
    assert at_5pm not in text and "8:30am-5pm" not in text


@pytest.mark.parametrize(
    "when, lang, words",
    [
        (datetime(2026, 12, 1, 7, 0, tzinfo=KC), "en", "Closed now, opens 8:30am"),  # later today
        (datetime(2026, 12, 1, 7, 0, tzinfo=KC), "es", "Cerrado ahora, abre 8:30am"),
        (datetime(2026, 12, 4, 20, 52, tzinfo=KC), "en", "Closed now, opens Mon 8:30am"),  # a Friday night
        (datetime(2026, 12, 5, 12, 0, tzinfo=KC), "es", "Cerrado ahora, abre lun 8:30am"),
        (datetime(2026, 12, 1, 10, 0, tzinfo=KC), "en", "Open until 5pm"),
        (datetime(2026, 12, 1, 10, 0, tzinfo=KC), "es", "Abierto hasta 5pm"),
    ],
)
def test_hours_are_told_as_they_are_at_that_moment(tmp_path, when, lang, words):
    found = directory(tmp_path, service("legal-aid", opens="08:30", closes="17:00"))
    assert words in said(found, when, lang)


def test_a_place_open_around_the_clock_and_one_with_no_hours(tmp_path):
    found = directory(
        tmp_path,
        service("a-always", byday="MO,TU,WE,TH,FR,SA,SU", opens="00:00", closes="24:00"),
        service("b-unknown", byday=None),
    )
    text = said(found, datetime(2026, 12, 1, 3, 0, tzinfo=KC))
    assert "Open 24 hours" in text
    block = text.split("Service b-unknown")[1]
    assert "Open" not in block and "Closed" not in block  # unknown hours: nothing rather than a guess


@pytest.mark.parametrize("lang, words", [("en", "Closed now, opens 1/9 9am"), ("es", "Cerrado ahora, abre 9/1 9am")])
def test_an_opening_a_week_or_more_away_is_told_by_its_date(tmp_path, lang, words):
    found = directory(
        tmp_path,
        service(
            "second-saturday",
            schedules=[{"freq": "MONTHLY", "byday": "2SA", "opens_at": "09:00", "closes_at": "11:00"}],
        ),
    )
    assert words in said(found, datetime(2027, 1, 2, 12, 0, tzinfo=KC), lang)  # 9 Jan is the second Saturday


@pytest.mark.parametrize("lang", ["en", "es"])
def test_lists_stay_gsm7_all_week(lang):
    # a middle dot or a curly quote would make a whole list UCS-2 (70 characters a segment);
    # Spanish a, i, o, u with accents are left to the sender's GSM-7 step (they unaccent)
    plain = str.maketrans("áíóúÁÍÓÚ", "aiouAIOU")
    for hours in range(0, 7 * 24, 2):
        for reply in places(SHIPPED, datetime(2026, 11, 30, tzinfo=KC) + timedelta(hours=hours), lang):
            assert is_gsm7(reply.translate(plain)), reply


# -- place ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang, plain",
    [
        ("en", "We only serve the Kansas City area, not 90210."),
        ("es", "Solo atendemos la zona de Kansas City, no el 90210."),
    ],
)
def test_a_zip_outside_the_area_is_told_so_and_gets_only_lines_to_call(lang, plain):
    engine = Engine(FLOWS, VOCABULARY.matcher, SHIPPED, KC, crisis=VOCABULARY.crisis, strict=True)
    out = engine.step(
        None, Inbound(FIRST_TEXT[lang]), Context(now=datetime(2026, 12, 1, 10, tzinfo=KC), zip_code="90210")
    )
    (text,) = [reply for reply in out.replies if "211" in reply]
    assert text.startswith(plain)
    assert engine.text("resources_by_phone", lang) in text and "211" in text
    assert ", 641" not in text  # no street address (street, ZIP)
    assert engine.text("resources_intro", lang) not in text and "near" not in text and "cerca" not in text
    referral = next(e for e in out.effects if isinstance(e, eng.CreateReferral))
    assert referral.resource_ids == ("united-way-211",) and referral.zip_code == "90210"


def test_outside_the_area_with_no_line_to_call_says_both_and_offers_a_person(tmp_path):
    found = directory(tmp_path, service("local-only", zip_code="64124"))
    engine = Engine(FLOWS, VOCABULARY.matcher, found, KC, crisis=VOCABULARY.crisis, strict=True)
    out = engine.step(None, Inbound("I need food"), Context(now=datetime(2026, 12, 1, 10, tzinfo=KC), zip_code="90210"))
    assert out.replies[-3:] == [
        engine.text("out_of_area", "en", zip="90210"),
        engine.text("no_resources", "en"),
        engine.text("person_offer", "en"),
    ]
    assert eng.RecordUnmet("food", "no_resource") in out.effects


def test_no_intro_claims_near_you():
    """A list may be ranked with no ZIP: its intro never says the places are near."""
    intros = [
        step.text
        for flow in FLOWS.flows.values()
        for step in flow.steps.values()
        if isinstance(step, Refer) and step.text
    ]
    intros += [FLOWS.messages[key] for key in ("resources_intro", "resources_by_phone", "out_of_area", "no_resources")]
    for text in intros:
        for lang, words in text.items():
            assert "near" not in words.lower() and "cerca" not in words.lower(), (lang, words)


@pytest.mark.parametrize("miles, serves", [(None, False), ("2000", True)])
def test_service_area_miles_reaches_the_directory(env, miles, serves):
    rt = Runtime.build(load_settings({**env, "SERVICE_AREA_MILES": miles} if miles else env))
    try:
        assert rt.directory.service_area_miles == int(miles or 15)
        assert rt.directory.serves("90210") is serves
    finally:
        rt.db.dispose()


def test_day_names_must_be_seven(tmp_path):
    flows_dir = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows_dir)
    messages = flows_dir / "messages.yaml"
    messages.write_text(
        messages.read_text(encoding="utf-8").replace('"lun mar mié jue vie sáb dom"', '"lun mar"'), encoding="utf-8"
    )
    errors = [i for i in check_flows(flows_dir, set(SHIPPED.categories)) if i.level == "error"]
    line = next(n for n, text in enumerate(messages.read_text(encoding="utf-8").splitlines(), 1) if '"lun mar"' in text)
    assert [(e.line, e.message) for e in errors] == [(line, "needs seven day names, Monday first, apart by spaces")]
