"""Flows as data: load `flows/*.yaml` into typed steps and check them (file, line, step)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.conversation.matching import VOCABULARY_FILE
from bot.conversation.segments import segments, to_gsm
from bot.yaml_lines import line_of

SPEC_VERSION = 1
MESSAGES_FILE = "messages.yaml"
NOT_FLOW_FILES = frozenset({MESSAGES_FILE, VOCABULARY_FILE})
INTAKE_FLOW, MENU_STEP = "intake", "menu"
ASK_KINDS = ("menu", "zip", "yes_no", "number", "text")
ACTIONS = ("say", "ask", "refer", "handoff", "follow_up", "set_language", "go", "check")
# What a `check` step can ask about the resident (the engine reads them from its context).
CHECKS = ("can_text",)
# A numbered choice or a "reply with a number" hint: never in a crisis hold.
_NUMBERED = re.compile(
    r"(?im)^\s*[1-9][.)]?\s+\S|\breply\s+(with\s+)?[1-9]|\b[1-9]\s+(yes|no|s[ií])\b"
    r"|\breply\s+with\s+a\s+number|\bresponda\s+(con\s+un\s+n[uú]mero|del?\s+[1-9]|[1-9])"
    r"|\bMEN[UÚ]\b"
)
# Carrier keywords (Twilio answers them itself): a question must never ask for one.
_RESERVED = re.compile(r"\b(YES|SI|SÍ|START|UNSTOP|STOP|HELP)\b")
SEGMENTS_WARN, SEGMENTS_MAX = 2, 4
CHECKIN_OUTCOMES = ("got_help", "not_yet", "more_help")

try:  # libyaml is much faster; fall back to the pure-Python loader
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

Text = dict[str, str]  # language code -> text


class M:
    """Keys of the system texts in messages.yaml that the engine uses."""

    GREETING = "greeting"  # the first text: who we are, privacy, how to stop, the other language
    THANKS = "thanks"
    WELCOME_BACK = "welcome_back"
    RESTARTED = "restarted"
    NOT_UNDERSTOOD = "not_understood"
    TEXT_ONLY = "text_only"
    TWO_MISSES = "two_misses_offer"
    PERSON_OFFER = "person_offer"
    TRY_AGAIN = "try_again"
    OFFER_DECLINED = "offer_declined"
    HANDOFF = "handoff"
    HANDOFF_WAITING = "handoff_waiting"
    HANDOFF_ENDED = "handoff_ended"
    STOP = "stop_confirm"
    START = "start_confirm"
    HELP = "help"
    CRISIS = "crisis"
    RESOURCES_INTRO = "resources_intro"
    RESOURCE_LINE = "resource_line"
    RESOURCE_HOTLINE = "resource_line_confidential"
    OPEN_UNTIL = "resource_open_until"
    OPEN_ALL_DAY = "resource_open_all_day"
    OPENS_TODAY = "resource_opens_today"
    OPENS_LATER = "resource_opens_later"
    DATE = "resource_date"
    OUT_OF_AREA = "out_of_area"
    BY_PHONE = "resources_by_phone"
    NO_RESOURCES = "no_resources"
    CHECKIN = "checkin"
    CHECKIN_GOT_HELP = "checkin_got_help"
    CHECKIN_NOT_YET = "checkin_not_yet"
    OPTION_YES = "option_yes"
    OPTION_NO = "option_no"
    CASEWORKER_NOTICE = "caseworker_notice"
    CASEWORKER_NOTICE_URGENT = "caseworker_notice_urgent"
    CASEWORKER_NOTICE_BATCH = "caseworker_notice_batch"
    REPLY_ONLY_ACK = "reply_only_ack"
    HOLD_NEED_NOTED = "hold_need_noted"
    NEXT_NEED_OFFER = "next_need_offer"
    # What happens next, said only when it is true (see Engine._promise).
    PROMISE_SOON = "promise_soon"
    PROMISE_ON_CALL = "promise_on_call"
    PROMISE_LATER = "promise_later"
    PROMISE_REPLY_ONLY = "promise_reply_only"
    PROMISE_WEB_SOON = "promise_web_soon"
    PROMISE_WEB_ON_CALL = "promise_web_on_call"
    PROMISE_WEB_LATER = "promise_web_later"
    WHEN_TODAY = "when_today"
    WHEN_TOMORROW = "when_tomorrow"
    WHEN_DAY = "when_day"
    PART_MORNING = "part_morning"
    PART_AFTERNOON = "part_afternoon"
    DAY_NAMES = "day_names"  # Monday..Sunday, apart by spaces
    DAY_SHORT = "day_short"  # Mon..Sun, apart by spaces
    PHONE_CODE = "phone_code"  # the web chat's one-time code
    CRISIS_KINDS = ("self_harm", "violence", "abuse", "overdose")
    # Questions the bot asks in system texts: checked like flow questions (no carrier keywords).
    QUESTIONS = (TWO_MISSES, PERSON_OFFER, CHECKIN, NEXT_NEED_OFFER)
    # System texts sent as whole replies (the rest are parts of other texts, or go to staff):
    # what `peaceline check` measures, with the flows' own texts and lists.
    REPLIES = (
        GREETING,
        THANKS,
        WELCOME_BACK,
        RESTARTED,
        NOT_UNDERSTOOD,
        TEXT_ONLY,
        TWO_MISSES,
        PERSON_OFFER,
        TRY_AGAIN,
        OFFER_DECLINED,
        HANDOFF,
        HANDOFF_WAITING,
        HANDOFF_ENDED,
        STOP,
        START,
        HELP,
        CRISIS,
        NO_RESOURCES,
        CHECKIN,
        CHECKIN_GOT_HELP,
        CHECKIN_NOT_YET,
        REPLY_ONLY_ACK,
        NEXT_NEED_OFFER,
        PHONE_CODE,
    )

    @classmethod
    def crisis(cls, kind: str) -> str:
        """Key of the crisis reply for one kind of danger."""
        return f"{cls.CRISIS}_{kind}"

    @classmethod
    def hold(cls, kind: str) -> str:
        """Key of the answer to each text during a crisis hold of one kind."""
        return f"hold_{kind}"

    @classmethod
    def in_crisis_hold(cls) -> tuple[str, ...]:
        """Texts said during a crisis hold: no menu, no numbered choice, no question."""
        kinds = cls.CRISIS_KINDS
        return (cls.CRISIS, *(cls.crisis(k) for k in kinds), *(cls.hold(k) for k in kinds), cls.HOLD_NEED_NOTED)

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """Every key the engine or the service may ask for."""
        keys = [v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)]
        return tuple(dict.fromkeys(keys + list(cls.in_crisis_hold())))


# ---------------------------------------------------------------- data model


@dataclass(frozen=True)
class Option:
    """One numbered menu choice: a label per language and where it leads."""

    value: str
    label: Text
    words: tuple[str, ...] = ()
    next: str | None = None  # a step of the same flow
    go: str | None = None  # or another flow


@dataclass(frozen=True)
class Step:
    """Fields every step has: its id, what it says, where it goes next."""

    id: str
    text: Text | None = None
    next: str | None = None


@dataclass(frozen=True)
class Say(Step):
    pass


@dataclass(frozen=True)
class Ask(Step):
    kind: str = "text"
    hint: Text | None = None
    options: tuple[Option, ...] = ()
    on: dict[str, str] = field(default_factory=dict)  # yes_no: "yes"/"no" -> step (if_yes/if_no)
    save: str | None = None
    skip_if_known: bool = False
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class Refer(Step):
    category: str = ""
    tags: tuple[str, ...] = ()
    empty: str | None = None  # step when the directory has nothing


@dataclass(frozen=True)
class Handoff(Step):
    reason: str = "asked_person"
    urgent: bool = False


@dataclass(frozen=True)
class FollowUp(Step):
    after: timedelta = timedelta(days=3)
    template: str = ""


@dataclass(frozen=True)
class SetLanguage(Step):
    language: str = ""


@dataclass(frozen=True)
class Go(Step):
    flow: str = ""


@dataclass(frozen=True)
class Check(Step):
    """Route on what the bot knows of the resident: `check: can_text` (a number we may text)."""

    condition: str = ""
    on: dict[str, str] = field(default_factory=dict)  # "yes"/"no" -> step (if_yes/if_no)


@dataclass(frozen=True)
class Flow:
    name: str
    file: Path
    start: str
    steps: dict[str, Step]
    category: str | None = None
    priority: int = 0  # a text that names several needs is answered for the highest first
    urgent: bool = False  # danger may be near: like a crisis answer, no greeting before it


@dataclass(frozen=True)
class FlowSet:
    """All flows plus the system texts, as the engine uses them."""

    flows: dict[str, Flow]
    messages: dict[str, Text]
    languages: tuple[str, ...]
    followup_templates: tuple[str, ...]
    sensitive_words: tuple[str, ...]
    checkin_answers: tuple[tuple[str, tuple[str, ...]], ...]
    warnings: tuple[Issue, ...] = ()

    def for_category(self, category: str | None) -> Flow | None:
        """The flow that serves a need category, if any."""
        return next((f for f in self.flows.values() if category and f.category == category), None)

    def first_need(self, needs: list[str]) -> str | None:
        """Of the needs a text names (in the order named), the one to answer first: the highest
        flow priority (safety before a lawyer), then the order named."""
        served = [n for n in needs if self.for_category(n)]
        return max(served, key=lambda n: self.for_category(n).priority, default=None)  # type: ignore[union-attr]


@dataclass(frozen=True)
class Issue:
    level: str  # "error" | "warning"
    file: str
    line: int | None
    step: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        step = f" step {self.step!r}:" if self.step else ""
        return f"{where}: {self.level}:{step} {self.message}"


class FlowError(ValueError):
    """The flows have errors; the message lists them, one a line."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# ---------------------------------------------------------------- public API


def load_flows(dir: Path, *, categories: set[str]) -> FlowSet:
    """Load and check every flow in `dir`; raise FlowError when any check fails."""
    flowset, issues = _load(Path(dir), categories)
    errors = [i for i in issues if i.level == "error"]
    if errors or flowset is None:
        raise FlowError(errors)
    return flowset


def check_flows(dir: Path, categories: set[str]) -> list[Issue]:
    """Every error and warning in the flows of `dir`, with file, line and step."""
    return _load(Path(dir), categories)[1]


def parse_duration(value: Any) -> timedelta | None:
    """'30m', '12h', '3d', '1w' -> timedelta; None when not understood."""
    found = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", str(value))
    if not found:
        return None
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[found[2]]
    return timedelta(**{unit: int(found[1])})


def fold(text: str) -> str:
    """Lowercase without accents, for word checks."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# ---------------------------------------------------------------- loading


@dataclass
class _Raw:
    level: str
    file: Path
    path: tuple[Any, ...]
    step: str | None
    message: str
    line: int | None = None


class _Checker:
    """Collects issues while turning YAML data into steps."""

    def __init__(self, dir: Path, categories: set[str]):
        self.dir = dir
        self.categories = categories
        self.languages: tuple[str, ...] = ("en",)
        self.raw: list[_Raw] = []
        self.file = dir
        self.step: str | None = None

    def error(self, path: tuple, message: str, line: int | None = None) -> None:
        self.raw.append(_Raw("error", self.file, path, self.step, message, line))

    def warn(self, path: tuple, message: str) -> None:
        self.raw.append(_Raw("warning", self.file, path, self.step, message))

    def read(self, file: Path) -> Any:
        """Parse one YAML file; a syntax error becomes an issue."""
        self.file, self.step = file, None
        try:
            return yaml.load(file.read_text(encoding="utf-8"), Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.error((), f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None)
        except (OSError, UnicodeDecodeError) as exc:
            self.error((), f"cannot read: {exc}")
        return None

    def text(self, raw: Any, path: tuple, *, required: bool = True) -> Text | None:
        """A {lang: text} mapping with every declared language."""
        if raw is None:
            if required:
                self.error(path, "needs a text")
            return None
        if not isinstance(raw, dict):
            self.error(path, "a text must be a mapping of language code to text")
            return None
        for lang in self.languages:
            if not isinstance(raw.get(lang), str) or not raw[lang].strip():
                self.error(path, f"missing translation {lang!r}")
        for lang in raw:
            if lang not in self.languages:
                self.warn(path + (lang,), f"language {lang!r} is not declared in {MESSAGES_FILE}")
        texts = {k: v for k, v in raw.items() if isinstance(v, str)}
        for lang, value in texts.items():
            self.length(value, path + (lang,), lang)
        return texts

    def length(self, value: str, path: tuple, lang: str) -> None:
        """Error over four SMS segments, warning over two, counted as the text goes out by SMS."""
        count = segments(to_gsm(value))
        if count > SEGMENTS_MAX:
            self.error(path, f"{lang} text is {count} SMS segments (at most {SEGMENTS_MAX})")
        elif count > SEGMENTS_WARN:
            self.warn(path, f"{lang} text is {count} SMS segments (aim for {SEGMENTS_WARN})")


def _load(dir: Path, categories: set[str]) -> tuple[FlowSet | None, list[Issue]]:
    check = _Checker(dir, categories)
    settings = _load_messages(check, dir / MESSAGES_FILE)
    flows: dict[str, Flow] = {}
    for file in sorted(dir.glob("*.yaml")):
        if file.name in NOT_FLOW_FILES:
            continue
        flow = _load_flow(check, file)
        if flow and flow.name in flows:
            check.error(("name",), f"flow {flow.name!r} is also defined in {flows[flow.name].file.name}")
        elif flow:
            flows[flow.name] = flow
    _check_set(check, flows, settings)
    issues = _resolve(check.raw, dir)
    if settings is None:
        return None, issues
    flowset = FlowSet(flows=flows, warnings=tuple(i for i in issues if i.level == "warning"), **settings)
    return flowset, issues


def _load_messages(check: _Checker, file: Path) -> dict[str, Any] | None:
    data = check.read(file) if file.exists() else None
    check.file = file
    if not isinstance(data, dict):
        check.error((), f"{MESSAGES_FILE} is missing or is not a mapping")
        return None
    if data.get("spec_version") != SPEC_VERSION:
        check.error(("spec_version",), f"spec_version must be {SPEC_VERSION}")
    langs = data.get("languages")
    if not (isinstance(langs, list) and langs and all(isinstance(x, str) for x in langs)):
        check.error(("languages",), "languages must be a list of language codes")
        langs = ["en"]
    check.languages = tuple(langs)
    raw = data.get("messages")
    raw = raw if isinstance(raw, dict) else {}
    if not raw:
        check.error(("messages",), "messages must be a mapping of key to text")
    messages = {key: check.text(value, ("messages", key)) or {} for key, value in raw.items()}
    for key in M.required():
        if key not in messages:
            check.error(("messages",), f"missing system text {key!r}")
    _check_placeholders(check, messages)
    for key in M.in_crisis_hold():
        for lang, value in messages.get(key, {}).items():
            if _NUMBERED.search(value):
                check.error(("messages", key, lang), "a crisis-hold text offers numbered options or the menu")
    for key in M.QUESTIONS:
        _check_reserved(check, ("messages", key), messages.get(key))
    for key in (M.DAY_NAMES, M.DAY_SHORT):
        _check_day_names(check, key, messages.get(key) or {})
    templates = _string_list(check, data, "followup_templates")
    words = _string_list(check, data, "sensitive_words")
    for key in templates:
        _check_template(check, key, messages.get(key), words)
    return {
        "messages": messages,
        "languages": check.languages,
        "followup_templates": tuple(templates),
        "sensitive_words": tuple(words),
        "checkin_answers": _checkin_answers(check, data.get("checkin_answers")),
    }


def _string_list(check: _Checker, data: dict, key: str) -> list[str]:
    value = data.get(key)
    if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
        check.error((key,), f"{key} must be a list of strings")
        return []
    return value


def _check_placeholders(check: _Checker, messages: dict[str, Text]) -> None:
    """Every translation of a text uses the same {placeholders}."""
    for key, texts in messages.items():
        found_names = {lang: _placeholders(value) for lang, value in texts.items()}
        names = {lang: found for lang, found in found_names.items() if found is not None}
        if len(names) < len(found_names):
            check.error(("messages", key), "broken {placeholder} (use {{ and }} for braces)")
            continue
        first = names.get(check.languages[0], set())
        for lang, found in names.items():
            if found != first:
                check.error(
                    ("messages", key, lang),
                    f"{lang} uses placeholders {sorted(found)}, {check.languages[0]} uses {sorted(first)}",
                )


def _check_day_names(check: _Checker, key: str, texts: Text) -> None:
    """Day names (an opening, the office hours, the next working day): Monday to Sunday, seven words."""
    for lang, value in texts.items():
        if len(value.split()) != 7:
            check.error(("messages", key, lang), "needs seven day names, Monday first, apart by spaces")


def _placeholders(value: str) -> set[str] | None:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(value) if name}
    except ValueError:
        return None


def _check_template(check: _Checker, key: str, texts: Text | None, words: list[str]) -> None:
    """Follow-ups are unsolicited and a phone may be shared: no sensitive words."""
    path = ("messages", key)
    if texts is None:
        check.error(("followup_templates",), f"follow-up template {key!r} has no text in messages")
        return
    for lang, value in texts.items():
        folded = fold(value)
        found = [w for w in words if re.search(rf"\b{re.escape(fold(w))}", folded)]
        if found:
            check.error(
                path + (lang,), "follow-up template uses the sensitive word " + ", ".join(repr(w) for w in found)
            )


def _checkin_answers(check: _Checker, raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Check-in answer words, in the order the template numbers them (1, 2, 3)."""
    if not isinstance(raw, dict) or list(raw) != list(CHECKIN_OUTCOMES):
        check.error(
            ("checkin_answers",),
            f"checkin_answers must map {', '.join(CHECKIN_OUTCOMES)} (in that order) to lists of words",
        )
        return tuple((o, ()) for o in CHECKIN_OUTCOMES)
    return tuple((o, tuple(str(w) for w in raw[o] or ())) for o in CHECKIN_OUTCOMES)


# ---------------------------------------------------------------- one flow


def _load_flow(check: _Checker, file: Path) -> Flow | None:
    data = check.read(file)
    if data is None:
        return None
    if not isinstance(data, dict):
        check.error((), "a flow file must be a mapping")
        return None
    if data.get("spec_version") != SPEC_VERSION:
        check.error(("spec_version",), f"spec_version must be {SPEC_VERSION}")
    name = data.get("name")
    if name != file.stem:
        check.error(("name",), f"name must be the file name without .yaml ({file.stem!r})")
    category = data.get("category")
    if category is not None and category not in check.categories:
        check.error(("category",), f"unknown category {category!r}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, dict) or not raw_steps:
        check.error(("steps",), "steps must be a mapping of step id to step")
        return None
    steps = {}
    for step_id, raw in raw_steps.items():
        check.step = str(step_id)
        # a broken step still exists (as a bare Step), so routes to it are not reported twice
        steps[str(step_id)] = _load_step(check, str(step_id), raw) or Step(id=str(step_id))
    check.step = None
    start = data.get("start")
    if start not in raw_steps:
        check.error(("start",), f"start step {start!r} does not exist")
    priority = data.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        check.error(("priority",), "priority must be a whole number")
        priority = 0
    return Flow(
        name=file.stem,
        file=file,
        start=str(start),
        steps=steps,
        category=category,
        priority=priority,
        urgent=data.get("urgent") is True,
    )


def _load_step(check: _Checker, step_id: str, raw: Any) -> Step | None:
    path = ("steps", step_id)
    if not isinstance(raw, dict):
        check.error(path, "a step must be a mapping")
        return None
    kinds = [k for k in ACTIONS if k in raw]
    if len(kinds) != 1:
        check.error(path, f"a step needs exactly one of: {', '.join(ACTIONS)}")
        return None
    kind = kinds[0]
    base: dict[str, Any] = {"id": step_id, "next": _str_or_none(raw.get("next"))}
    if kind == "say":
        return Say(text=check.text(raw["say"], path + ("say",)), **base)
    base["text"] = check.text(raw.get("text"), path + ("text",), required=kind == "ask")
    return _LOADERS[kind](check, path, raw, base)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _load_ask(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    kind = raw["ask"]
    if kind not in ASK_KINDS:
        check.error(path + ("ask",), f"unknown question kind {kind!r} (use {', '.join(ASK_KINDS)})")
        kind = "text"
    options = _options(check, path, raw.get("options")) if kind == "menu" else ()
    # `if_yes`/`if_no`, not `on: {yes, no}`: YAML 1.1 reads on, yes and no as booleans
    on = {answer: str(raw[f"if_{answer}"]) for answer in ("yes", "no") if raw.get(f"if_{answer}")}
    if kind == "yes_no" and not base["next"] and len(on) < 2:
        check.error(path, "a yes_no question needs if_yes and if_no steps (or a next)")
    elif kind != "yes_no" and on:
        check.error(path, "only yes_no questions route with if_yes / if_no")
    if kind == "menu" and raw.get("skip_if_known") and not raw.get("save"):
        check.error(path, "a menu with skip_if_known needs save: (where the answer its words chose is kept)")
    step = Ask(
        kind=kind,
        hint=check.text(raw.get("hint"), path + ("hint",), required=False),
        options=options,
        on=on,
        save=_str_or_none(raw.get("save")),
        skip_if_known=bool(raw.get("skip_if_known")),
        min=raw.get("min"),
        max=raw.get("max"),
        **base,
    )
    if kind == "menu" and step.text:
        for lang in step.text:
            check.length(render_menu(step, lang), path + ("text", lang), lang)
    return step


def render_menu(step: Ask, lang: str, header: Text | None = None) -> str:
    """The question (or `header`, a hint) followed by one numbered line per option."""
    head = header or step.text or {}
    lines = [f"{n} {_pick(o.label, lang)}" for n, o in enumerate(step.options, 1)]
    return "\n".join([_pick(head, lang)] + lines)


def _pick(text: Text, lang: str) -> str:
    """The text in `lang`, else in any language it has (the checker reports the gap)."""
    return text.get(lang) or next(iter(text.values()), "")


def _options(check: _Checker, path: tuple, raw: Any) -> tuple[Option, ...]:
    if not isinstance(raw, list) or not raw:
        check.error(path + ("options",), "a menu needs a list of options")
        return ()
    if len(raw) > 9:
        check.warn(path + ("options",), "more than 9 options: hard to answer with one number")
    options = []
    for n, item in enumerate(raw):
        where = path + ("options", n)
        if not isinstance(item, dict) or not item.get("value"):
            check.error(where, "an option needs a value, a label and a next (or go)")
            continue
        if ("next" in item) == ("go" in item):
            check.error(where, "an option needs exactly one of next (a step) or go (a flow)")
        label = check.text(item.get("label"), where + ("label",)) or {}
        words = item.get("words") or []
        options.append(
            Option(
                value=str(item["value"]),
                label=label,
                words=tuple(str(w) for w in words),
                next=_str_or_none(item.get("next")),
                go=_str_or_none(item.get("go")),
            )
        )
    return tuple(options)


def _load_refer(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    category = str(raw["refer"])
    if category not in check.categories:
        check.error(path + ("refer",), f"unknown category {category!r}")
    tags = raw.get("tags") or []
    if not isinstance(tags, list):
        check.error(path + ("tags",), "tags must be a list")
        tags = []
    return Refer(category=category, tags=tuple(str(t) for t in tags), empty=_str_or_none(raw.get("empty")), **base)


def _load_handoff(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    spec = raw["handoff"] if isinstance(raw["handoff"], dict) else {}
    if not isinstance(raw["handoff"], dict):
        check.error(path + ("handoff",), "handoff takes {reason: …, urgent: true|false}")
    return Handoff(reason=str(spec.get("reason", "asked_person")), urgent=bool(spec.get("urgent", False)), **base)


def _load_follow_up(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    spec = raw["follow_up"] if isinstance(raw["follow_up"], dict) else {}
    after = parse_duration(spec.get("after"))
    if after is None:
        check.error(path + ("follow_up",), "follow_up needs after: like 3d, 12h or 30m")
    template = str(spec.get("template", ""))
    return FollowUp(after=after or timedelta(days=3), template=template, **base)


def _load_set_language(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    language = str(raw["set_language"])
    if language not in check.languages:
        check.error(path + ("set_language",), f"language {language!r} is not declared")
    return SetLanguage(language=language, **base)


def _load_go(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    return Go(flow=str(raw["go"]), **base)


def _load_check(check: _Checker, path: tuple, raw: dict, base: dict) -> Step:
    condition = str(raw["check"])
    if condition not in CHECKS:
        check.error(path + ("check",), f"unknown check {condition!r} (use {', '.join(CHECKS)})")
    on = {answer: str(raw[f"if_{answer}"]) for answer in ("yes", "no") if raw.get(f"if_{answer}")}
    if len(on) < 2:
        check.error(path, "a check needs if_yes and if_no steps")
    return Check(condition=condition, on=on, **base)


_LOADERS = {
    "ask": _load_ask,
    "refer": _load_refer,
    "handoff": _load_handoff,
    "follow_up": _load_follow_up,
    "set_language": _load_set_language,
    "go": _load_go,
    "check": _load_check,
}


# ---------------------------------------------------------------- the whole set


def exits(step: Step) -> Iterator[tuple[tuple, str]]:
    """(yaml path, target step id) for every route out of a step in its own flow."""
    base = ("steps", step.id)
    if step.next:
        yield base + ("next",), step.next
    if isinstance(step, (Ask, Check)):
        for answer, target in step.on.items():
            yield base + (f"if_{answer}",), target
    if isinstance(step, Ask):
        for n, option in enumerate(step.options):
            if option.next:
                yield base + ("options", n, "next"), option.next
    if isinstance(step, Refer) and step.empty:
        yield base + ("empty",), step.empty


def _check_set(check: _Checker, flows: dict[str, Flow], settings: dict | None) -> None:
    templates = settings["followup_templates"] if settings else ()
    if INTAKE_FLOW not in flows:
        check.file, check.step = check.dir / f"{INTAKE_FLOW}.yaml", None
        check.error((), f"the {INTAKE_FLOW!r} flow is missing")
    elif MENU_STEP not in flows[INTAKE_FLOW].steps:
        check.file, check.step = flows[INTAKE_FLOW].file, None
        check.error(("steps",), f"the {INTAKE_FLOW!r} flow needs a {MENU_STEP!r} step")
    for flow in flows.values():
        check.file = flow.file
        for step in flow.steps.values():
            check.step = step.id
            _check_step_links(check, flows, flow, step, templates)
        check.step = None
        _check_reachable(check, flow)
    _check_loops(check, flows)
    for category in sorted(check.categories - {f.category for f in flows.values()}):
        check.file, check.step = check.dir, None
        check.warn((), f"no flow serves category {category!r} (set category: in a flow)")


def _check_step_links(
    check: _Checker, flows: dict[str, Flow], flow: Flow, step: Step, templates: tuple[str, ...]
) -> None:
    for path, target in exits(step):
        if target not in flow.steps:
            check.error(path, f"route to missing step {target!r}")
    gos: list[tuple[tuple, str]] = [(("steps", step.id, "go"), step.flow)] if isinstance(step, Go) else []
    if isinstance(step, Ask):
        gos += [(("steps", step.id, "options", n, "go"), o.go) for n, o in enumerate(step.options) if o.go]
    for path, target in gos:
        if target not in flows:
            check.error(path, f"go to missing flow {target!r}")
    if isinstance(step, FollowUp) and step.template not in templates:
        check.error(
            ("steps", step.id, "follow_up"),
            f"template {step.template!r} is not one of followup_templates in {MESSAGES_FILE}",
        )
    if isinstance(step, Ask):
        _check_reserved(check, ("steps", step.id, "text"), step.text)
        _check_reserved(check, ("steps", step.id, "hint"), step.hint)
    if isinstance(step, Handoff) and crisis_kind(step.reason) is not None:
        _check_hold_step(check, flows, flow, step)


def crisis_kind(reason: str) -> str | None:
    """The crisis kind of a hand-off reason "crisis:<kind>", else None."""
    kind, _, detail = reason.partition(":")
    return detail if kind == "crisis" else None


def _check_reserved(check: _Checker, path: tuple, text: Text | None) -> None:
    """A question must never ask for a carrier keyword: Twilio answers YES, START, STOP and HELP itself."""
    for lang, value in (text or {}).items():
        found = _RESERVED.search(value)
        if found:
            check.error(path + (lang,), f'asks for the carrier keyword {found[0]!r}: ask for a number ("1 yes, 2 no")')


def _check_hold_step(check: _Checker, flows: dict[str, Flow], flow: Flow, step: Handoff) -> None:
    """A step that starts a crisis hold offers no numbered choice and leads to no question."""
    path = ("steps", step.id)
    if crisis_kind(step.reason) not in M.CRISIS_KINDS:
        check.error(
            path + ("handoff",),
            f"unknown crisis kind in {step.reason!r} (use crisis:{', crisis:'.join(M.CRISIS_KINDS)})",
        )
    for lang, value in (step.text or {}).items():
        if _NUMBERED.search(value):
            check.error(path + ("text", lang), "a crisis-hold step offers numbered options or the menu")
    seen, target = set(), step.next
    while target and target not in seen and target in flow.steps:
        seen.add(target)
        after = flow.steps[target]
        if isinstance(after, (Ask, Refer, Go, Check)):
            check.error(path + ("next",), "a crisis-hold step leads to a question or a list: end the flow here")
            return
        target = after.next


def _check_reachable(check: _Checker, flow: Flow) -> None:
    seen, todo = set(), [flow.start]
    while todo:
        step_id = todo.pop()
        if step_id in seen or step_id not in flow.steps:
            continue
        seen.add(step_id)
        todo.extend(target for _, target in exits(flow.steps[step_id]))
    for step_id in flow.steps.keys() - seen:
        check.step = step_id
        check.warn(("steps", step_id), "step cannot be reached from start")
    check.step = None


def _check_loops(check: _Checker, flows: dict[str, Flow]) -> None:
    """Steps that lead back to themselves without a question would spin forever."""

    def edges(flow: Flow, step: Step) -> Iterator[tuple[Flow, str]]:
        if isinstance(step, Ask):
            return
        if isinstance(step, Go) and step.flow in flows:
            yield flows[step.flow], flows[step.flow].start
        for _, target in exits(step):
            yield flow, target

    done: set[tuple[str, str]] = set()

    def visit(flow: Flow, step_id: str, trail: list[tuple[str, str]]) -> None:
        node = (flow.name, step_id)
        if node in trail:
            check.file, check.step = flow.file, step_id
            check.error(("steps", step_id), "steps loop back here without asking a question")
            return
        if node in done or step_id not in flow.steps:
            return
        for next_flow, target in edges(flow, flow.steps[step_id]):
            visit(next_flow, target, trail + [node])
        done.add(node)

    for flow in flows.values():
        for step_id in flow.steps:
            visit(flow, step_id, [])
    check.step = None


# ---------------------------------------------------------------- line numbers


def _resolve(raw: list[_Raw], dir: Path) -> list[Issue]:
    """Turn YAML paths into line numbers, composing each file with issues once."""
    roots: dict[Path, yaml.Node | None] = {}
    issues = []
    for item in raw:
        line = item.line
        if line is None and item.file.is_file():
            if item.file not in roots:
                roots[item.file] = _compose(item.file)
            line = line_of(roots[item.file], item.path)
        issues.append(Issue(item.level, _display(item.file, dir), line, item.step, item.message))
    return issues


def _compose(file: Path) -> yaml.Node | None:
    try:
        return yaml.compose(file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None


def _display(file: Path, dir: Path) -> str:
    try:
        return str(file.relative_to(dir.parent))
    except ValueError:
        return str(file)
