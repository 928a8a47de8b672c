"""The engine, pure: data-driven cases (tests/engine_cases/*.yaml) plus what data cannot say.

Case format (reused by the lead's transcript tests through the real /sms webhook):

    - name: what the case shows
      now: "2026-12-01T16:00:00+00:00"      # optional; default T0 (Tuesday 10:00 in Kansas City)
      ctx: {on_duty: false, zip_code: "64124", language: es, first_contact: false}
      turns:
        - send: I need food                  # or `media: 1` with send: ""
          carrier: STOP                      # optional Twilio OptOutType
          ctx: {handoff_open: true}          # optional, this turn only
          state: {step: gone}                # optional: patch the saved state first (a flow edited)
          expect: [ZIP code]                 # substrings of the replies, any case
          not: [What do you need]
          in_order: [Open, Closed now]       # substrings that appear in this order (a ranking)
          silent: true                       # no reply at all
          replies: 2                         # number of replies
          options: ["Yes", "No"]             # quick replies of the last question
          effects: [SetProfile, {CreateReferral: {urgent: true, reason: "crisis:abuse"}}]
          session: {flow: food, step: zip}   # fields of the saved state after the turn
        - wait: 25h

Between turns the runner plays the service: it remembers opt-out, language, ZIP, contact
preference and an open referral from the effects and the state from the outcome, and moves the
clock 20 seconds. `on_duty` and `on_call_told` in ctx set who is available (default: a caseworker
is on duty); with nobody on duty the next working day is worked out from the office hours.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from cases import check_replies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import parse_office_hours
from bot.conversation import engine as eng
from bot.conversation.contact import ContactPreference
from bot.conversation.engine import Availability, Context, Engine, Inbound, Outcome
from bot.conversation.flows import load_flows, parse_duration
from bot.conversation.segments import segments
from bot.conversation.vocabulary import Vocabulary
from bot.directory.resources import load_directory

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
CASES = sorted((Path(__file__).parent / "engine_cases").glob("*.yaml"))
T0 = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # Tuesday 10:00 in Kansas City
TZ = ZoneInfo("America/Chicago")
DIRECTORY = load_directory(ROOT / "resources.yaml")
VOCABULARY = Vocabulary.from_flows(FLOWS)
MATCHER = VOCABULARY.matcher
FLOWSET = load_flows(FLOWS, categories=set(DIRECTORY.categories))
TURN_GAP = timedelta(seconds=20)
CTX_FLAGS = {f.name for f in fields(Context)} - {"now", "availability", "checkin_sent_at"} | {
    "on_duty",
    "on_call_told",
    "checkin_open",
}
OFFICE = parse_office_hours("Mon-Fri 09:00-17:00")


def make_engine(directory: Any = DIRECTORY, flows: Any = FLOWSET, *, strict: bool = True) -> Engine:
    return Engine(flows, MATCHER, directory, TZ, crisis=VOCABULARY.crisis, strict=strict)


ENGINE = make_engine()


# ---------------------------------------------------------------- the case runner


@dataclass
class Resident:
    """What the service keeps between texts."""

    opted_out: bool = False
    language: str | None = None
    zip_code: str | None = None
    seen: bool = False
    state: dict | None = None
    referral_open: bool = False
    contact_preference: ContactPreference = ContactPreference.ANY

    def apply(self, outcome: Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, eng.OptOut):
                self.opted_out = True
            elif isinstance(effect, eng.OptIn):
                self.opted_out = False
            elif isinstance(effect, eng.SetProfile):
                self.language = effect.language or self.language
                self.zip_code = effect.zip_code or self.zip_code
            elif isinstance(effect, eng.CreateReferral):
                self.referral_open = True
            elif isinstance(effect, eng.SetContactPreference):
                self.contact_preference = effect.preference
        self.state, self.seen = outcome.state, True


def availability(now: datetime, on_duty: bool = True, on_call_told: bool = False) -> Availability:
    """Who is there, as the service would say: nobody on duty means the next working day's opening."""
    local = now.astimezone(TZ)
    day = local.date() if local.time() < OFFICE.opens else local.date() + timedelta(days=1)
    while day.weekday() not in OFFICE.days:
        day += timedelta(days=1)
    opens = datetime.combine(day, OFFICE.opens, tzinfo=TZ)
    return Availability(
        on_duty=on_duty,
        on_call_told=on_call_told,
        next_open=None if on_duty else opens,
        office_days=tuple(sorted(OFFICE.days)),
        office_opens=OFFICE.opens,
        office_closes=OFFICE.closes,
    )


def load_cases() -> list:
    out = []
    for path in CASES:
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            out.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return out


def run_case(engine: Engine, case: dict) -> list[Outcome]:
    base = dict(case.get("ctx", {}))
    resident = Resident(
        opted_out=base.pop("opted_out", False), language=base.pop("language", None), zip_code=base.pop("zip_code", None)
    )
    now = start = datetime.fromisoformat(case["now"]) if "now" in case else T0
    outcomes = []
    for turn in case["turns"]:
        if "wait" in turn:
            now += parse_duration(turn["wait"])
            continue
        if "state" in turn:
            resident.state = {**(resident.state or {}), **turn["state"]}
        flags = {
            "first_contact": not resident.seen,
            "referral_open": resident.referral_open,
            "contact_preference": resident.contact_preference,
            **base,
            **turn.get("ctx", {}),
        }
        assert set(flags) <= CTX_FLAGS, f"unknown ctx keys {set(flags) - CTX_FLAGS}"
        who = availability(now, flags.pop("on_duty", True), flags.pop("on_call_told", False))
        flags.pop("checkin_open", None)
        if turn.get("ctx", {}).get("checkin_open"):  # a check-in went out just before this turn
            flags["checkin_sent_at"] = now - timedelta(seconds=10)
        elif base.get("checkin_open"):  # a check-in went out before the case began
            flags["checkin_sent_at"] = start - timedelta(seconds=10)
        ctx = Context(
            now=now,
            opted_out=resident.opted_out,
            language=resident.language,
            zip_code=resident.zip_code,
            availability=who,
            **flags,
        )
        inbound = Inbound(str(turn["send"]), turn.get("media", 0), turn.get("carrier"))
        outcome = engine.step(resident.state, inbound, ctx)
        check_turn(turn, outcome)
        resident.apply(outcome)
        outcomes.append(outcome)
        now += TURN_GAP
    return outcomes


def check_turn(turn: dict, outcome: Outcome) -> None:
    context = f"after {turn['send']!r} the bot said {outcome.replies!r} with effects {outcome.effects!r}"
    json.dumps(outcome.state)
    check_replies(turn, outcome.replies, context)
    if "options" in turn:
        assert outcome.options == turn["options"], context
    if "effects" in turn:
        check_effects(turn["effects"], outcome.effects, context)
    for key, value in turn.get("session", {}).items():
        assert outcome.state.get(key) == value, f"state {key}={outcome.state.get(key)!r} {context}"


def check_effects(expected: list, actual: list, context: str) -> None:
    names = [next(iter(e)) if isinstance(e, dict) else e for e in expected]
    assert [type(e).__name__ for e in actual] == names, context
    for spec, effect in zip(expected, actual, strict=False):
        if isinstance(spec, dict):
            for key, value in next(iter(spec.values())).items():
                got = getattr(effect, key)
                if key == "after":
                    value = parse_duration(value)
                elif key == "resource_ids" and isinstance(value, int):
                    got = len(got)
                assert got == value, f"{type(effect).__name__}.{key} is {got!r}, not {value!r} {context}"


@pytest.mark.parametrize("case", load_cases())
def test_case(case):
    run_case(ENGINE, case)


# ---------------------------------------------------------------- what the cases cannot say


def ctx(**values: Any) -> Context:
    return Context(now=values.pop("now", T0), **values)


def test_three_places_with_phone_address_and_hours():
    out = ENGINE.step(None, Inbound("I need food"), ctx(first_contact=True, zip_code="64124"))
    matches = DIRECTORY.rank("food", zip_code="64124", now=T0, tz=TZ, limit=3)
    said = "\n".join(out.replies)
    assert len(matches) == 3
    for match in matches:
        assert match.name in said and match.phone in said
        assert match.address is None or match.address in said
        if match.open_until:
            assert f"Open until {match.open_until}" in said
    referral = next(e for e in out.effects if isinstance(e, eng.CreateReferral))
    assert referral.resource_ids == tuple(m.service_id for m in matches)
    assert (referral.category, referral.zip_code, referral.reason) == ("food", "64124", "resources")


def test_confidential_place_shows_no_address():
    out = ENGINE.step(None, Inbound("safety at home"), ctx(zip_code="64124"))
    out = ENGINE.step(out.state, Inbound("yes"), ctx(zip_code="64124"))
    matches = DIRECTORY.rank("safety", zip_code="64124", now=T0, tz=TZ, limit=3)
    said = "\n".join(out.replies)
    for match in matches:
        assert match.name in said
        if match.confidential:
            service = DIRECTORY.get(match.service_id)
            for location in service.locations:
                for address in location.addresses:
                    assert address.address_1 not in said


class EmptyDirectory:
    """A directory with nothing in it."""

    categories = DIRECTORY.categories

    def serves(self, zip_code: str | None) -> bool:
        return True

    def rank(self, *args: Any, **kwargs: Any) -> list:
        return []


@pytest.mark.parametrize("lang, first, yes", [("en", "I need food", "yes"), ("es", "necesito comida", "sí")])
def test_no_resource_says_so_records_unmet_and_offers_a_person(lang, first, yes):
    engine = make_engine(EmptyDirectory())
    out = engine.step(None, Inbound(first), ctx(zip_code="64124", first_contact=True))
    assert out.replies == [engine.text(key, lang) for key in ("greeting", "no_resources", "person_offer")]
    assert eng.RecordUnmet("food", "no_resource") in out.effects
    assert out.options == [engine.text("option_yes", lang), engine.text("option_no", lang)]
    yes_out = engine.step(out.state, Inbound(yes), ctx(zip_code="64124"))
    assert [type(e) for e in yes_out.effects] == [eng.CreateReferral]
    assert yes_out.effects[0].reason == "asked_person" and yes_out.effects[0].category == "food"
    no_out = engine.step(out.state, Inbound("no"), ctx(zip_code="64124"))
    assert no_out.effects == [] and no_out.replies == [engine.text("offer_declined", lang)]


class BrokenDirectory(EmptyDirectory):
    def rank(self, *args: Any, **kwargs: Any) -> list:
        raise RuntimeError("disk on fire")


def test_a_bug_answers_with_a_restart_not_an_exception():
    engine = make_engine(BrokenDirectory(), strict=False)
    out = engine.step(None, Inbound("I need food"), ctx(zip_code="64124"))
    assert out.replies[0] == engine.text("restarted", "en")
    assert "1 " in out.replies[1] and out.state["step"] == "menu"
    with pytest.raises(RuntimeError):
        make_engine(BrokenDirectory()).step(None, Inbound("I need food"), ctx(zip_code="64124"))


SURVEY = """
spec_version: 1
name: survey
start: age
steps:
  age:
    ask: number
    min: 1
    max: 120
    save: age
    text: {en: "How old are you?", es: "¿Cuántos años tiene?"}
    next: story
  story:
    ask: text
    save: story
    text: {en: "Tell us more.", es: "Cuéntenos más."}
    next: spanish
  spanish:
    set_language: es
    next: places
  places:
    refer: food
    empty: sorry
    next: later
  sorry:
    say: {en: "Nothing found.", es: "No encontramos nada."}
  later:
    follow_up: {after: 2d, template: checkin}
"""


@pytest.mark.parametrize("directory", [DIRECTORY, EmptyDirectory()], ids=["places", "none"])
def test_number_text_set_language_empty_and_follow_up_steps(tmp_path, directory):
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    for file in FLOWS.glob("*.yaml"):
        (flows_dir / file.name).write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
    (flows_dir / "survey.yaml").write_text(SURVEY, encoding="utf-8")
    engine = make_engine(directory, load_flows(flows_dir, categories=set(DIRECTORY.categories)))
    state = {"flow": "survey", "step": "age", "lang": "en", "vars": {"greeted": True}, "last_at": T0.isoformat()}
    out = engine.step(state, Inbound("500"), ctx(now=T0 + TURN_GAP))
    assert out.replies == [engine.text("not_understood", "en"), "How old are you?"]
    out = engine.step(out.state, Inbound("I am 34"), ctx(now=T0 + 2 * TURN_GAP))
    assert out.replies == ["Tell us more."] and out.state["vars"]["age"] == 34
    out = engine.step(out.state, Inbound("my kids and me"), ctx(now=T0 + 3 * TURN_GAP))
    assert out.state["vars"]["story"] == "my kids and me" and out.state["lang"] == "es"
    assert out.effects[0] == eng.SetProfile(language="es")
    if isinstance(directory, EmptyDirectory):
        assert out.replies == [engine.text("no_resources", "es"), "No encontramos nada."]
        assert out.effects[1:] == [eng.RecordUnmet("food", "no_resource")]
    else:
        assert out.replies[0].startswith(engine.text("resources_intro", "es"))
        assert [type(e) for e in out.effects[1:]] == [eng.CreateReferral, eng.ScheduleFollowUp]
        assert out.effects[2] == eng.ScheduleFollowUp(timedelta(days=2), "checkin", "food")
    assert out.state["flow"] is None


def test_text_fills_templates_for_the_service():
    notice = ENGINE.text("caseworker_notice", "en", referral="42", link="https://x.example/inbox/42")
    assert "#42" in notice and "https://x.example/inbox/42" in notice
    assert ENGINE.text("checkin", "fr") == ENGINE.text("checkin", "en")  # unknown language: the first
    assert ENGINE.text("resource_open_until", "en") == "Open until "  # missing value: empty
    assert ENGINE.followup_templates == ("checkin",)
    with pytest.raises(KeyError):
        ENGINE.text("no_such_key", "en")


def test_state_is_json_and_round_trips():
    out = ENGINE.step(None, Inbound("hi"), ctx(first_contact=True))
    state = json.loads(json.dumps(out.state))
    assert state == {
        "v": 1,
        "flow": "intake",
        "step": "menu",
        "lang": "en",
        "vars": {"greeted": True},
        "misses": 0,
        "offer": None,
        "last_at": T0.isoformat(),
        "hold": None,
        "hold_until": None,
    }
    again = ENGINE.step(state, Inbound("2"), ctx(now=T0 + TURN_GAP))
    assert again.state["flow"] == "food" and again.state["vars"]["category"] == "food"


def test_flow_removed_under_a_live_session():
    out = ENGINE.step(
        {"flow": "old_flow", "step": "q1", "lang": "es", "last_at": T0.isoformat()},
        Inbound("2"),
        ctx(now=T0 + TURN_GAP),
    )
    assert out.replies[0] == ENGINE.text("restarted", "es")
    assert out.state["step"] == "menu" and out.state["lang"] == "es"


def test_naive_now_is_read_as_utc():
    out = ENGINE.step(None, Inbound("hi"), ctx(now=T0.replace(tzinfo=None), first_contact=True))
    assert out.state["last_at"] == T0.isoformat()


def test_reply_packing_keeps_each_reply_within_four_segments():
    parts = ["Places that can help:"] + ["Some Place With A Long Name 816-555-0100\n1234 Independence Ave" * 4] * 3
    packed = eng._pack(parts)
    assert "\n\n".join(packed) == "\n\n".join(parts)
    assert all(segments(p) <= 4 for p in packed) and len(packed) >= 2


def test_importing_the_engine_pulls_no_web_database_or_twilio():
    code = (
        "import sys, bot.conversation.engine\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy', 'twilio', 'werkzeug'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_engine_never_reads_the_clock():
    source = (ROOT / "bot" / "conversation" / "engine.py").read_text(encoding="utf-8")
    for call in ("datetime.now", "datetime.utcnow", "date.today", "time.time", "import time"):
        assert call not in source


# ---------------------------------------------------------------- fuzz: never raises


WORDS = [
    "hi",
    "hola",
    "I need food",
    "necesito comida",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "0",
    "yes",
    "no",
    "sí",
    "64124",
    "99999",
    "MENU",
    "ESPAÑOL",
    "english",
    "talk to a person",
    "STOP",
    "START",
    "HELP",
    "stop texting me",
    "I want to kill myself",
    "he is hitting me",
    "overdose",
    "dont text me he checks my phone",
    "my son got shot and we need a lawyer",
    "my cousin was killed",
    "",
    "   ",
    "🙂",
    "rent",
    "court",
    "body",
    "feelings",
    "abogado",
    "no sé",
    "\x00",
    "a" * 2000,
]
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=200))
contexts = st.builds(
    Context,
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
    opted_out=st.booleans(),
    handoff_open=st.booleans(),
    checkin_sent_at=st.sampled_from([None, datetime(2026, 12, 1, 10, 0, tzinfo=UTC)]),
    language=st.sampled_from([None, "en", "es", "fr"]),
    zip_code=st.sampled_from([None, "64124", "00000"]),
    idle_hours=st.integers(0, 48),
    first_contact=st.booleans(),
    referral_open=st.booleans(),
    can_text=st.booleans(),
    contact_preference=st.sampled_from(list(ContactPreference)),
    availability=st.builds(
        Availability,
        on_duty=st.booleans(),
        on_call_told=st.booleans(),
        next_open=st.sampled_from([None, datetime(2026, 12, 7, 9, 0, tzinfo=TZ)]),
    ),
)
inbounds = st.builds(
    Inbound,
    text=texts,
    media_count=st.integers(0, 3),
    carrier_keyword=st.sampled_from([None, None, None, "STOP", "START", "HELP", "bogus"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
junk_states = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["v", "flow", "step", "lang", "vars", "misses", "offer", "last_at", "hold", "hold_until"]),
        json_values,
        max_size=8,
    ),
    st.fixed_dictionaries(
        {
            "flow": st.sampled_from(["intake", "food", "safety", "gone"]),
            "step": st.sampled_from(["menu", "zip", "safe_now", "person", "gone"]),
            "offer": st.sampled_from([None, "two_misses", "no_resource", "next_need", "other"]),
            "last_at": st.sampled_from([None, "2026-12-01T10:00:00", "garbage"]),
            "hold": st.sampled_from([None, "self_harm", "abuse", "nonsense"]),
            "hold_until": st.sampled_from([None, "2030-01-01T00:00:00+00:00", "garbage"]),
        }
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=junk_states, turns=st.lists(st.tuples(inbounds, contexts), min_size=1, max_size=6))
def test_fuzz_never_raises_and_replies_fit(state, turns):
    for inbound, context in turns:
        out = ENGINE.step(state, inbound, context)
        json.dumps(out.state)
        assert all(isinstance(r, str) and r and len(r) <= 1600 and segments(r) <= 4 for r in out.replies)
        if inbound.carrier_keyword and not (inbound.carrier_keyword == "START" and not context.opted_out):
            assert out.replies == []  # Twilio answered; only a "yes" START to an open question is ours
        state = out.state


@settings(max_examples=100, deadline=None)
@given(text=texts, context=contexts)
def test_fuzz_opted_out_hears_nothing_but_crisis_help_and_start(text, context):
    context = replace(context, opted_out=True)
    out = ENGINE.step(None, Inbound(text), context)
    if out.replies:  # only a crisis answer, START (opt back in) or the HELP text
        kinds = {type(e).__name__ for e in out.effects}
        assert (
            "CreateReferral" in kinds or "OptIn" in kinds or out.replies == [ENGINE.text("help", out.state["lang"])]
        ), (text, out.replies)
