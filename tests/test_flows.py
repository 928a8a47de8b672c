"""The flow checker: the shipped flows pass; each kind of mistake is caught with file, line and step."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.conversation.flows import Ask, FlowError, M, check_flows, load_flows, parse_duration, render_menu
from bot.conversation.segments import segments
from bot.directory.resources import load_directory

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
CATEGORIES = set(load_directory(ROOT / "resources.yaml").categories)


# ---------------------------------------------------------------- the shipped flows


def test_shipped_flows_have_no_errors():
    issues = check_flows(FLOWS, CATEGORIES)
    assert [str(i) for i in issues if i.level == "error"] == []


def test_shipped_flows_load_fast_and_completely():
    started = time.perf_counter()
    flows = load_flows(FLOWS, categories=CATEGORIES)
    assert time.perf_counter() - started < 1.0
    assert {"intake", "closing", "housing", "food", "health", "legal", "recovery", "safety"} <= set(flows.flows)
    assert {f.category for f in flows.flows.values()} >= CATEGORIES
    assert set(M.required()) <= set(flows.messages)
    assert flows.followup_templates == ("checkin", "welcome")


def test_every_shipped_text_fits_two_segments_and_menus_four():
    flows = load_flows(FLOWS, categories=CATEGORIES)
    for key, texts in flows.messages.items():
        for lang, text in texts.items():
            assert segments(text) <= 2, (key, lang)
    for flow in flows.flows.values():
        for step in flow.steps.values():
            for lang in flows.languages:
                if isinstance(step, Ask) and step.kind == "menu":
                    assert segments(render_menu(step, lang)) <= 4, (flow.name, step.id, lang)
                elif step.text:
                    assert segments(step.text[lang]) <= 2, (flow.name, step.id, lang)


def test_checkin_template_is_discreet_and_numbered():
    flows = load_flows(FLOWS, categories=CATEGORIES)
    for lang, text in flows.messages["checkin"].items():
        assert "1" in text and "2" in text and "3" in text, lang
    assert [value for value, _ in flows.checkin_answers] == ["got_help", "not_yet", "more_help"]


# ---------------------------------------------------------------- segments


@pytest.mark.parametrize(
    "text, count",
    [
        ("", 0),
        ("hello", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # extension characters count double
        ("{" * 81, 2),
        ("€" * 80, 1),
        ("a" * 152 + "{" + "a" * 152, 3),  # an escape pair never splits across segments
        ("ñandú", 1),
        ("é" * 160, 1),  # é, ñ, ü are GSM-7
        ("á" * 70, 1),  # á, í, ó, ú are not: UCS-2
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("😀" * 35, 1),  # a surrogate pair is two UCS-2 units
        ("😀" * 36, 2),
        ("a" * 66 + "😀" + "a" * 66, 3),  # ... and never splits
        ("It’s", 1),
    ],
)
def test_segments(text, count):
    assert segments(text) == count


def test_parse_duration():
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1w") == timedelta(weeks=1)
    assert parse_duration("3 days") is None
    assert parse_duration(None) is None


# ---------------------------------------------------------------- broken copies


@pytest.fixture
def flows_copy(tmp_path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(FLOWS, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path.name}")


def only_error(dir: Path, contains: str):
    errors = [i for i in check_flows(dir, CATEGORIES) if i.level == "error"]
    found = [i for i in errors if contains in i.message]
    assert len(found) == 1, [str(e) for e in errors]
    assert len(errors) == 1, [str(e) for e in errors]
    return found[0]


def test_route_to_missing_step(flows_copy):
    food = flows_copy / "food.yaml"
    edit(food, "    next: places", "    next: nowhere")
    issue = only_error(flows_copy, "missing step 'nowhere'")
    assert (issue.file, issue.line, issue.step) == ("flows/food.yaml", line_of(food, "next: nowhere"), "zip")


def test_yes_no_route_to_missing_step(flows_copy):
    housing = flows_copy / "housing.yaml"
    edit(housing, "if_no: places", "if_no: placez")
    issue = only_error(flows_copy, "missing step 'placez'")
    assert (issue.file, issue.line, issue.step) == ("flows/housing.yaml", line_of(housing, "placez"), "court")


def test_go_to_missing_flow(flows_copy):
    intake = flows_copy / "intake.yaml"
    edit(intake, "go: legal", "go: legl")
    issue = only_error(flows_copy, "missing flow 'legl'")
    assert (issue.line, issue.step) == (line_of(intake, "go: legl"), "menu")


def test_missing_translation(flows_copy):
    food = flows_copy / "food.yaml"
    edit(food, '      es: "Lugares con comida:"\n', "")
    issue = only_error(flows_copy, "missing translation 'es'")
    assert (issue.file, issue.step) == ("flows/food.yaml", "places")
    assert issue.line == line_of(food, 'en: "Places with food:"') - 1  # the `text:` key


def test_missing_translation_in_messages(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(messages, '    es: "Perdón, no le entendí."\n', "")
    issue = only_error(flows_copy, "missing translation 'es'")
    assert (issue.file, issue.step) == ("flows/messages.yaml", None)
    assert issue.line == line_of(messages, "not_understood:")


def test_missing_system_text(flows_copy):
    messages = flows_copy / "messages.yaml"
    text = messages.read_text(encoding="utf-8")
    start = text.index("  text_only:")
    end = text.index("  two_misses_offer:")
    messages.write_text(text[:start] + text[end:], encoding="utf-8")
    issue = only_error(flows_copy, "missing system text 'text_only'")
    assert issue.line == line_of(messages, "messages:")


def test_unknown_category(flows_copy):
    legal = flows_copy / "legal.yaml"
    edit(legal, "    refer: legal", "    refer: lawyers")
    issue = only_error(flows_copy, "unknown category 'lawyers'")
    assert (issue.file, issue.line, issue.step) == ("flows/legal.yaml", line_of(legal, "refer: lawyers"), "places")


def test_text_over_four_segments_is_an_error(flows_copy):
    food = flows_copy / "food.yaml"
    long = "Food help. " + "Please tell us more about it. " * 25
    edit(food, 'en: "Food help. What is your ZIP code? Like 64124"', f'en: "{long}"')
    issue = only_error(flows_copy, "SMS segments")
    assert (issue.line, issue.step) == (line_of(food, long[:30]), "zip")
    assert "at most 4" in issue.message


def test_text_over_two_segments_is_a_warning(flows_copy):
    food = flows_copy / "food.yaml"
    edit(
        food,
        'en: "Food help. What is your ZIP code? Like 64124"',
        'en: "' + "Food help. " * 30 + 'What is your ZIP code?"',
    )
    issues = check_flows(flows_copy, CATEGORIES)
    assert not [i for i in issues if i.level == "error"]
    warning = [i for i in issues if "SMS segments" in i.message and i.file == "flows/food.yaml"]
    assert len(warning) == 1 and warning[0].level == "warning" and warning[0].step == "zip"


def test_long_menu_counts_its_options(flows_copy):
    intake = flows_copy / "intake.yaml"
    edit(
        intake,
        'label: {en: "Food", es: "Comida"}',
        'label: {en: "' + "Food and groceries and meals " * 20 + '", es: "Comida"}',
    )
    issue = only_error(flows_copy, "SMS segments")
    assert issue.step == "menu" and issue.file == "flows/intake.yaml"


def test_sensitive_word_in_followup_template(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(messages, "Did you get what you needed?", "Did the eviction help work?")
    issue = only_error(flows_copy, "sensitive word 'eviction'")
    assert (issue.file, issue.line) == ("flows/messages.yaml", line_of(messages, "Did the eviction help work?"))


def test_sensitive_word_matches_without_accents(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(messages, "¿Consiguió lo que necesitaba?", "¿Le ayudó la Policía?")
    only_error(flows_copy, "sensitive word 'policia'")


def test_followup_step_with_unknown_template(flows_copy):
    closing = flows_copy / "closing.yaml"
    edit(
        closing,
        "follow_up: {after: 3d, template: checkin}\n    text:",
        "follow_up: {after: 3d, template: eviction_reminder}\n    text:",
    )
    issue = only_error(flows_copy, "template 'eviction_reminder'")
    assert (issue.line, issue.step) == (line_of(closing, "eviction_reminder"), "checkin")


def test_bad_duration(flows_copy):
    closing = flows_copy / "closing.yaml"
    edit(
        closing,
        "follow_up: {after: 3d, template: checkin}\n    text:",
        "follow_up: {after: soon, template: checkin}\n    text:",
    )
    issue = only_error(flows_copy, "after:")
    assert (issue.line, issue.step) == (line_of(closing, "after: soon"), "checkin")


def test_placeholder_mismatch(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(messages, 'es: "Peaceline: nuevo caso #{referral}', 'es: "Peaceline: nuevo caso #{caso}')
    issue = only_error(flows_copy, "placeholders")
    assert issue.line == line_of(messages, "nuevo caso #{caso}")


def test_yes_no_without_both_routes(flows_copy):
    safety = flows_copy / "safety.yaml"
    edit(safety, "    if_no: danger\n", "")
    issue = only_error(flows_copy, "if_yes and if_no")
    assert (issue.line, issue.step) == (line_of(safety, "safe_now:"), "safe_now")


def test_menu_skipped_by_the_words_needs_a_place_to_keep_its_answer(flows_copy):
    health = flows_copy / "health.yaml"
    edit(health, "    save: health_kind\n", "")
    issue = only_error(flows_copy, "skip_if_known needs save")
    assert (issue.line, issue.step) == (line_of(health, "  kind:"), "kind")


def test_unknown_question_kind(flows_copy):
    legal = flows_copy / "legal.yaml"
    edit(legal, "ask: zip", "ask: postcode")
    issue = only_error(flows_copy, "unknown question kind 'postcode'")
    assert (issue.line, issue.step) == (line_of(legal, "ask: postcode"), "zip")


def test_step_with_two_actions(flows_copy):
    legal = flows_copy / "legal.yaml"
    edit(legal, "    refer: legal\n", "    refer: legal\n    go: food\n")
    issue = only_error(flows_copy, "exactly one of")
    assert (issue.line, issue.step) == (line_of(legal, "  places:"), "places")


def test_missing_start_step(flows_copy):
    recovery = flows_copy / "recovery.yaml"
    edit(recovery, "start: zip", "start: hello")
    issue = only_error(flows_copy, "start step 'hello'")
    assert (issue.file, issue.line, issue.step) == ("flows/recovery.yaml", line_of(recovery, "start: hello"), None)


def test_loop_without_a_question(flows_copy):
    legal = flows_copy / "legal.yaml"
    edit(legal, "  closing:\n    go: closing", "  closing:\n    go: closing\n    next: places")
    edit(legal, "    next: closing", "    next: again")
    edit(legal, "  closing:\n", "  again:\n    say: {en: Again, es: Otra vez}\n    next: places\n  closing:\n")
    errors = [i for i in check_flows(flows_copy, CATEGORIES) if i.level == "error"]
    assert errors and all("loop" in e.message for e in errors), [str(e) for e in errors]
    assert {e.step for e in errors} <= {"places", "again"}


def test_file_name_must_match(flows_copy):
    (flows_copy / "legal.yaml").rename(flows_copy / "lawyer.yaml")
    errors = [i for i in check_flows(flows_copy, CATEGORIES) if i.level == "error"]
    assert any(e.file == "flows/lawyer.yaml" and "name must be" in e.message and e.line == 3 for e in errors)


def test_not_yaml_reports_the_line(flows_copy):
    food = flows_copy / "food.yaml"
    edit(food, "    refer: food\n", "    refer: [food\n")
    issues = [i for i in check_flows(flows_copy, CATEGORIES) if i.file == "flows/food.yaml"]
    assert len(issues) == 1 and "not valid YAML" in issues[0].message
    assert issues[0].line is not None and abs(issues[0].line - line_of(food, "refer: [food")) <= 2


def test_missing_intake(flows_copy):
    (flows_copy / "intake.yaml").unlink()
    errors = [i for i in check_flows(flows_copy, CATEGORIES) if i.level == "error"]
    assert any("'intake' flow is missing" in e.message for e in errors)


def test_undeclared_language_is_a_warning(flows_copy):
    food = flows_copy / "food.yaml"
    edit(food, '      es: "Lugares con comida:"\n', '      es: "Lugares con comida:"\n      fr: "Des endroits:"\n')
    issues = check_flows(flows_copy, CATEGORIES)
    assert not [i for i in issues if i.level == "error"]
    assert any(i.level == "warning" and "'fr'" in i.message and i.step == "places" for i in issues)


def test_load_flows_raises_with_every_error(flows_copy):
    edit(flows_copy / "food.yaml", "    next: places", "    next: nowhere")
    edit(flows_copy / "legal.yaml", "    refer: legal", "    refer: lawyers")
    with pytest.raises(FlowError) as raised:
        load_flows(flows_copy, categories=CATEGORIES)
    text = str(raised.value)
    assert "flows/food.yaml:" in text and "missing step 'nowhere'" in text
    assert "flows/legal.yaml:" in text and "unknown category 'lawyers'" in text
    assert len(raised.value.issues) == 2


# -- the crisis hold and carrier keywords --------------------------------------------------------------


def test_a_crisis_hold_step_that_offers_numbered_options_fails_the_check(flows_copy):
    safety = flows_copy / "safety.yaml"
    edit(safety, 'text START to 88788). {promise}"', 'text START to 88788). {promise} Reply 1 yes, 2 no"')
    issue = only_error(flows_copy, "crisis-hold step offers numbered options")
    assert (issue.file, issue.line, issue.step) == (
        "flows/safety.yaml",
        line_of(safety, "{promise} Reply 1 yes"),
        "danger",
    )


def test_a_crisis_hold_step_that_leads_to_a_question_fails_the_check(flows_copy):
    safety = flows_copy / "safety.yaml"
    edit(
        safety,
        '    handoff: {reason: "crisis:abuse", urgent: true}\n',
        '    handoff: {reason: "crisis:abuse", urgent: true}\n    next: zip\n',
    )
    issue = only_error(flows_copy, "leads to a question")
    assert issue.step == "danger"


def test_a_crisis_hold_text_with_the_menu_fails_the_check(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(
        messages,
        'en: "We are here. Keep texting us if you want. You can also text 988',
        'en: "Text MENU to start over. We are here. Keep texting us if you want. You can also text 988',
    )
    issue = only_error(flows_copy, "crisis-hold text")
    assert issue.line == line_of(messages, "Text MENU to start over. We are here.")


def test_a_question_that_asks_for_a_carrier_keyword_fails_the_check(flows_copy):
    housing = flows_copy / "housing.yaml"
    edit(
        housing,
        "Do you have a court date for an eviction? Reply 1 yes, 2 no",
        "Do you have a court date for an eviction? Reply YES or NO",
    )
    issue = only_error(flows_copy, "carrier keyword 'YES'")
    assert (issue.line, issue.step) == (line_of(housing, "Reply YES or NO"), "court")


def test_a_system_question_that_asks_for_a_carrier_keyword_fails_the_check(flows_copy):
    messages = flows_copy / "messages.yaml"
    edit(
        messages,
        'Want to talk with a person from our team? Reply 1 yes, 2 no"\n    es: "¿Quiere',
        'Want to talk with a person from our team? Reply START"\n    es: "¿Quiere',
    )
    issue = only_error(flows_copy, "carrier keyword 'START'")
    assert issue.line == line_of(messages, "Reply START")


def test_a_flow_priority_must_be_a_number(flows_copy):
    edit(flows_copy / "loss.yaml", "priority: 1", "priority: high")
    assert "priority must be a whole number" in str(only_error(flows_copy, "priority"))
