"""The conversation engine: (state, inbound text, context) -> (state, replies, effects).

Pure: no web framework, database, Twilio or clock. Time comes in `Context.now`; what
should happen in the world comes back as plain-data effects that the service applies.
Every word a resident reads lives in flows/*.yaml.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Union
from zoneinfo import ZoneInfo

from bot import crisis, keywords
from bot.flows import (INTAKE_FLOW, MENU_STEP, Ask, Flow, FlowSet, FollowUp, Go, Handoff, M, Option,
                       Refer, Say, SetLanguage, Step, Text, render_menu)
from bot.segments import segments

if TYPE_CHECKING:
    from bot.matching import Matcher
    from bot.resources import Directory, Match

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_REPLY_CHARS = 1600
MAX_REPLY_SEGMENTS = 4
MAX_HOPS = 50            # steps entered in one turn; the checker forbids loops, this is a backstop
MAX_SAVED_TEXT = 500     # a free-text answer kept in the state
MAX_FIELD_CHARS = 80     # a resource name or address from the directory
RESOURCE_LIMIT = 3
DAY_NAMES_AHEAD = 7      # a next opening a week or more away is told by its date, not a day name
TWO_MISSES, NO_RESOURCE = "two_misses", "no_resource"   # the yes/no "want a person?" offers


# ---------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class Inbound:
    text: str
    media_count: int = 0
    carrier_keyword: str | None = None   # Twilio OptOutType: "STOP" | "START" | "HELP"


@dataclass(frozen=True)
class Context:
    now: datetime                 # aware, UTC
    opted_out: bool = False
    handoff_open: bool = False    # a caseworker has claimed an open referral for this resident
    checkin_open: bool = False    # a check-in follow-up was sent and awaits its answer
    language: str | None = None   # known from the resident row
    zip_code: str | None = None
    office_open: bool = True
    idle_hours: int = 24
    first_contact: bool = False   # no earlier message from this resident


@dataclass(frozen=True)
class OptOut:
    pass


@dataclass(frozen=True)
class OptIn:
    pass


@dataclass(frozen=True)
class SetProfile:
    language: str | None = None
    zip_code: str | None = None


@dataclass(frozen=True)
class CreateReferral:
    category: str | None
    zip_code: str | None
    urgent: bool
    reason: str   # "asked_person" | "crisis:<kind>" | "two_misses" | "resources" | "more_help"
    resource_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScheduleFollowUp:
    after: timedelta
    template: str
    category: str | None


@dataclass(frozen=True)
class RelayToCaseworker:
    """Hand-off open: the text belongs to the caseworker thread; the bot stays quiet."""


@dataclass(frozen=True)
class EndHandoff:
    """MENU during a hand-off: back to the bot; tell the caseworker."""


@dataclass(frozen=True)
class CheckinAnswer:
    outcome: str   # "got_help" | "not_yet" | "more_help"


@dataclass(frozen=True)
class RecordUnmet:
    category: str | None
    reason: str    # "no_resource" | "declined"


Effect = Union[OptOut, OptIn, SetProfile, CreateReferral, ScheduleFollowUp, RelayToCaseworker,
               EndHandoff, CheckinAnswer, RecordUnmet]


@dataclass
class Outcome:
    state: dict                   # JSON-serialisable
    replies: list[str]
    options: list[str]            # quick-reply labels of the last question (web chat buttons)
    effects: list[Effect]


# ---------------------------------------------------------------- session state


@dataclass
class _State:
    """The saved conversation: where the resident is and what we know."""

    lang: str
    flow: str | None = None
    step: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    misses: int = 0
    offer: str | None = None      # a pending "want a person?" question
    last_at: datetime | None = None

    @classmethod
    def load(cls, raw: Any, languages: tuple[str, ...]) -> _State | None:
        """Read a saved state, dropping whatever does not fit (it may be old or hand-edited)."""
        if not isinstance(raw, dict) or not raw:
            return None
        text = lambda key: raw[key] if isinstance(raw.get(key), str) else None  # noqa: E731
        misses = raw.get("misses")
        return cls(lang=text("lang") if text("lang") in languages else languages[0],
                   flow=text("flow"), step=text("step"),
                   vars=dict(raw["vars"]) if isinstance(raw.get("vars"), dict) else {},
                   misses=misses if isinstance(misses, int) and not isinstance(misses, bool) else 0,
                   offer=text("offer"), last_at=_parse_time(text("last_at")))

    def dump(self) -> dict:
        return {"v": STATE_VERSION, "flow": self.flow, "step": self.step, "lang": self.lang,
                "vars": self.vars, "misses": self.misses, "offer": self.offer,
                "last_at": self.last_at.isoformat() if self.last_at else None}

    def fresh(self) -> _State:
        """A new session that keeps what we know about the person (language, ZIP)."""
        keep = {k: v for k, v in self.vars.items() if k in ("zip", "greeted")}
        return _State(lang=self.lang, vars=keep, last_at=self.last_at)

    def end(self) -> None:
        self.flow = self.step = self.offer = None
        self.misses = 0


def _parse_time(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if moment and moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


@dataclass
class _Turn:
    """What one inbound text produces, built up step by step."""

    state: _State
    ctx: Context
    text: str
    replies: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.state.lang

    @property
    def zip(self) -> str | None:
        value = self.state.vars.get("zip")
        return value if isinstance(value, str) else self.ctx.zip_code

    @property
    def category(self) -> str | None:
        value = self.state.vars.get("category")
        return value if isinstance(value, str) else None

    def outcome(self) -> Outcome:
        replies = [r[:MAX_REPLY_CHARS] for r in self.replies if r]
        return Outcome(self.state.dump(), replies, self.options, self.effects)


# ---------------------------------------------------------------- the engine


class Engine:
    """Runs the flows. Never raises on any input: a bug answers with a restart, not a 500."""

    def __init__(self, flows: FlowSet, matcher: Matcher, directory: Directory, tz: ZoneInfo,
                 *, strict: bool = False):
        self.flows, self.matcher, self.directory, self.tz = flows, matcher, directory, tz
        self.strict = strict   # tests: let exceptions through instead of the safe fallback
        self.languages = flows.languages
        self.intake = flows.flows[INTAKE_FLOW]

    # -- for the service ----------------------------------------------------------------

    @property
    def followup_templates(self) -> tuple[str, ...]:
        """Message keys the scheduler may send unasked (checked free of sensitive words)."""
        return self.flows.followup_templates

    def text(self, key: str, lang: str, **values: str) -> str:
        """A system text from flows/messages.yaml in `lang` (else the first language), filled in."""
        texts = self.flows.messages[key]
        template = texts.get(lang) or texts[self.languages[0]]
        return template.format_map(_Blank(values))

    def step(self, state: dict | None, inbound: Inbound, ctx: Context) -> Outcome:
        """Answer one inbound text."""
        try:
            return self._step(state, inbound, ctx)
        except Exception:
            if self.strict:
                raise
            log.exception("engine.failed")
            return self._fallback(state, ctx)

    # -- the order of checks ------------------------------------------------------------

    def _step(self, raw: dict | None, inbound: Inbound, ctx: Context) -> Outcome:
        if ctx.now.tzinfo is None:
            ctx = replace(ctx, now=ctx.now.replace(tzinfo=timezone.utc))
        text = inbound.text.strip() if isinstance(inbound.text, str) else ""
        saved = _State.load(raw, self.languages)
        quiet = Outcome(saved.dump() if saved else {}, [], [], [])
        if inbound.carrier_keyword:   # Twilio already answered: record, never reply twice
            quiet.effects.extend(_carrier_effects(inbound.carrier_keyword))
            return quiet
        turn = _Turn(saved or _State(lang=self._language(text, None, ctx)), ctx, text)
        if saved is None and text:
            self._set_language(turn, turn.lang)
        kind = crisis.detect(text) if text else None
        word = keywords.classify(text, opted_out=ctx.opted_out) if text and not kind else None
        if kind:
            self._crisis(turn, kind)
        elif word == keywords.Compliance.STOP and ctx.opted_out:
            return quiet   # already out: only one confirmation, ever
        elif word:
            self._compliance(turn, word)
        elif ctx.opted_out:
            return quiet
        elif ctx.handoff_open:
            self._in_handoff(turn)
        elif ctx.checkin_open and not self._mid_question(saved, ctx) and (answer := self._checkin_answer(text)):
            self._checkin(turn, answer)
        elif not text:   # a picture or an empty text: not a miss, and not a start either
            self._say(turn, M.TEXT_ONLY)
            return Outcome(turn.state.dump(), turn.replies, [], [])
        else:
            self._converse(turn, saved)
        turn.state.last_at = ctx.now
        return turn.outcome()

    def _converse(self, turn: _Turn, saved: _State | None) -> None:
        """Session expiry, global words, then the flow."""
        ctx, prefix = turn.ctx, None
        # the greeting and privacy line, once: to a new resident, or one who has not had them
        first = not (saved.vars.get("greeted") if saved else not ctx.first_contact)
        if saved and self._idle(saved, ctx):
            turn.state = saved.fresh()
            self._set_language(turn, self._language(turn.text, saved, ctx))
        if saved is None or self._idle(saved, ctx):
            prefix = None if first else M.WELCOME_BACK
        if first:
            turn.state.vars["greeted"] = True
        word = self.matcher.global_word(turn.text)
        if word == "menu" and first:
            self._begin(turn, self.intake)
        elif word == "menu":
            self._menu(turn, prefix)
        elif word and word.startswith("lang:") and word[5:] in self.languages:
            self._switch_language(turn, word[5:], prefix, first)
        elif word == "person":
            self._say(turn, M.PRIVACY if first else prefix)
            self._handoff(turn, "asked_person")
            turn.state.end()
        elif turn.state.offer:
            self._answer_offer(turn)
        elif turn.state.flow is None:
            if not prefix and not first:   # a new need in a live session: follow its language
                self._set_language(turn, self.matcher.language(turn.text) or turn.lang)
            self._start(turn, prefix, first)
        else:
            self._answer(turn)

    # -- crisis, compliance, hand-off, check-in -----------------------------------------

    def _crisis(self, turn: _Turn, kind: crisis.CrisisKind) -> None:
        written = self.matcher.language(turn.text)
        if written in self.languages and written != turn.lang:   # answer in the words they used
            self._set_language(turn, written)
        key = M.crisis(kind)
        self._say(turn, key if key in self.flows.messages else M.CRISIS)
        turn.effects.append(CreateReferral(turn.category, turn.zip, urgent=True, reason=f"crisis:{kind}"))

    def _compliance(self, turn: _Turn, word: keywords.Compliance) -> None:
        if word == keywords.Compliance.STOP:
            turn.effects.append(OptOut())
            self._say(turn, M.STOP)
            turn.state.end()
        elif word == keywords.Compliance.START:
            turn.effects.append(OptIn())
            self._say(turn, M.START)
            self._menu(turn, None)
        else:
            self._say(turn, M.HELP)

    def _in_handoff(self, turn: _Turn) -> None:
        if self.matcher.global_word(turn.text) == "menu":
            turn.effects.append(EndHandoff())
            self._menu(turn, M.HANDOFF_ENDED)
        else:
            turn.effects.append(RelayToCaseworker())

    def _checkin_answer(self, text: str) -> str | None:
        """got_help / not_yet / more_help from 1, 2, 3, their words, or yes / no."""
        if not text:
            return None
        found = self.matcher.choice(text, self.flows.checkin_answers)
        if found:
            return found
        return {True: "got_help", False: "not_yet"}.get(self.matcher.yes_no(text))

    def _checkin(self, turn: _Turn, answer: str) -> None:
        turn.effects.append(CheckinAnswer(answer))
        turn.state = turn.state.fresh()
        if answer == "more_help":
            self._handoff(turn, "more_help")
        else:
            self._say(turn, M.CHECKIN_GOT_HELP if answer == "got_help" else M.CHECKIN_NOT_YET)

    def _mid_question(self, saved: _State | None, ctx: Context) -> bool:
        """A live session waits on an answer: a yes or a 1 belongs to it, not to a check-in."""
        return bool(saved and (saved.flow or saved.offer) and not self._idle(saved, ctx))

    # -- starting, the menu, languages --------------------------------------------------

    def _start(self, turn: _Turn, prefix: str | None, first: bool) -> None:
        """A text outside any question: a named need goes straight to its flow."""
        flow = self.flows.for_category(self.matcher.category(turn.text))
        if flow:
            self._say(turn, M.PRIVACY if first else prefix)
            self._begin(turn, flow)
        elif turn.state.vars.get("handoff") and not prefix:
            self._say(turn, M.HANDOFF_WAITING)
        elif first:
            self._begin(turn, self.intake)
        else:
            self._menu(turn, prefix)

    def _menu(self, turn: _Turn, prefix: str | None) -> None:
        self._say(turn, prefix)
        turn.state = turn.state.fresh()
        self._enter(turn, self.intake, MENU_STEP)

    def _switch_language(self, turn: _Turn, lang: str, prefix: str | None, first: bool) -> None:
        """Switch, then repeat the question the resident was on, in the new language."""
        self._set_language(turn, lang, always=True)
        step = self._current_ask(turn.state)
        if prefix or first:
            self._start(turn, prefix, first)
        elif turn.state.offer:
            self._offer(turn, M.TWO_MISSES if turn.state.offer == TWO_MISSES else M.PERSON_OFFER)
        elif step:
            self._ask(turn, step)
        else:
            self._menu(turn, None)

    def _set_language(self, turn: _Turn, lang: str, *, always: bool = False) -> None:
        """Use `lang` from now on; tell the service when the resident's profile differs."""
        turn.state.lang = lang
        # one language change per turn: a later switch replaces what the first text suggested
        turn.effects = [e for e in turn.effects if not (isinstance(e, SetProfile) and e.language)]
        if always or lang != turn.ctx.language:
            turn.effects.append(SetProfile(language=lang))

    def _language(self, text: str, saved: _State | None, ctx: Context) -> str:
        """Language of a new session: what the first text reads as, else what we knew."""
        for lang in (self.matcher.language(text) if text else None, saved and saved.lang, ctx.language):
            if lang in self.languages:
                return lang
        return self.languages[0]

    def _idle(self, state: _State, ctx: Context) -> bool:
        return bool(state.last_at and ctx.now - state.last_at > timedelta(hours=ctx.idle_hours))

    # -- answering a question -----------------------------------------------------------

    def _current_ask(self, state: _State) -> Ask | None:
        flow = self.flows.flows.get(state.flow or "")
        step = flow.steps.get(state.step or "") if flow else None
        return step if isinstance(step, Ask) else None

    def _answer(self, turn: _Turn) -> None:
        step = self._current_ask(turn.state)
        if step is None:   # the flow was edited under a live session
            turn.state = turn.state.fresh()
            self._start(turn, M.RESTARTED, False)
            return
        flow = self.flows.flows[turn.state.flow or ""]
        route = self._parse(turn, step)
        if route is None:
            self._miss(turn, flow, step)
            return
        turn.state.misses = 0
        target_flow, target = route
        if target_flow is not flow and target_flow.category:
            turn.state.vars["category"] = target_flow.category
        self._enter(turn, target_flow, target)

    def _parse(self, turn: _Turn, step: Ask) -> tuple[Flow, str | None] | None:
        """(flow, next step) for a usable answer, None for a miss."""
        flow = self.flows.flows[turn.state.flow or ""]
        if step.kind == "menu":
            option = self._choose(step, turn.text)
            if option is None:
                return None
            self._save(turn, step, option.value)
            if option.go:
                return self.flows.flows[option.go], self.flows.flows[option.go].start
            return flow, option.next
        if step.kind == "zip":
            return self._parse_zip(turn, step, flow)
        value = self._value(step, turn.text)
        if value is None:
            return None
        self._save(turn, step, value)
        if step.kind == "yes_no":
            return flow, step.on.get("yes" if value else "no", step.next)
        return flow, step.next

    def _value(self, step: Ask, text: str) -> Any:
        """The answer to a yes_no, number or free-text question; None when it is not one."""
        if step.kind == "yes_no":
            return self.matcher.yes_no(text)
        if step.kind == "number":
            number = self.matcher.number(text)
            fits = number is not None and (step.min is None or number >= step.min) \
                and (step.max is None or number <= step.max)
            return number if fits else None
        return text[:MAX_SAVED_TEXT]

    def _parse_zip(self, turn: _Turn, step: Ask, flow: Flow) -> tuple[Flow, str | None] | None:
        zip_code = self.matcher.zip_code(turn.text)
        if zip_code:
            turn.state.vars["zip"] = zip_code
            if zip_code != turn.ctx.zip_code:
                turn.effects.append(SetProfile(zip_code=zip_code))
            return flow, step.next
        if self.matcher.yes_no(turn.text) is False:   # "no": does not know it; rank without
            return flow, step.next
        return None

    def _choose(self, step: Ask, text: str) -> Option | None:
        """The option a menu answer picks: its number, label or words, else the need it names."""
        choices = [(o.value, (*o.label.values(), *o.words)) for o in step.options]
        value = self.matcher.choice(text, choices) or self.matcher.category(text)
        return next((o for o in step.options if o.value == value), None)

    def _save(self, turn: _Turn, step: Ask, value: Any) -> None:
        if step.save:
            turn.state.vars[step.save] = value

    def _miss(self, turn: _Turn, flow: Flow, step: Ask) -> None:
        """Ask again with a hint; after two misses, offer a person."""
        other = self.flows.for_category(self.matcher.category(turn.text))
        if other and other is not flow and step.kind != "text":
            self._begin(turn, other)   # a new need named mid-question: follow the resident
            return
        turn.state.misses += 1
        if turn.state.misses >= 2:
            turn.state.misses = 0
            turn.state.offer = TWO_MISSES
            self._offer(turn, M.TWO_MISSES)
            return
        if step.hint and step.kind == "menu":
            self._ask(turn, step, header=step.hint)
        elif step.hint:
            self._say_text(turn, step.hint)
            turn.options = self._options(turn, step)
        else:
            self._say(turn, M.NOT_UNDERSTOOD)
            self._ask(turn, step)

    def _answer_offer(self, turn: _Turn) -> None:
        """The answer to "want a person to text you?"."""
        offer, turn.state.offer = turn.state.offer, None
        yes = self.matcher.yes_no(turn.text)
        step = self._current_ask(turn.state)
        if yes:
            self._handoff(turn, TWO_MISSES if offer == TWO_MISSES else "asked_person")
            turn.state.end()
        elif offer == TWO_MISSES and step and yes is False:
            self._say(turn, M.TRY_AGAIN)
            self._ask(turn, step)
        elif offer == TWO_MISSES and step:
            self._answer(turn)   # not a yes or no: maybe a better answer to the question
        elif yes is False:
            self._say(turn, M.OFFER_DECLINED)
            turn.state.end()
        else:
            turn.state.end()
            self._start(turn, None, False)

    # -- walking the steps --------------------------------------------------------------

    def _begin(self, turn: _Turn, flow: Flow) -> None:
        if flow.category:
            turn.state.vars["category"] = flow.category
        self._enter(turn, flow, flow.start)

    def _enter(self, turn: _Turn, flow: Flow, step_id: str | None) -> None:
        """Run steps from `step_id` until a question (wait for the answer) or the end."""
        for _ in range(MAX_HOPS):
            step = flow.steps.get(step_id) if step_id else None
            if step is None:
                turn.state.end()
                return
            if isinstance(step, Go):
                flow = self.flows.flows[step.flow]
                if flow.category:
                    turn.state.vars["category"] = flow.category
                step_id = flow.start
                continue
            if isinstance(step, Ask) and not self._known(turn, step):
                turn.state.flow, turn.state.step, turn.state.misses = flow.name, step.id, 0
                self._ask(turn, step)
                return
            if isinstance(step, Refer) and not self._refer(turn, step):
                if step.empty:
                    step_id = step.empty
                    continue
                turn.state.end()
                turn.state.offer = NO_RESOURCE
                self._offer(turn, M.PERSON_OFFER)
                return
            self._act(turn, step)
            step_id = step.next
        raise RuntimeError(f"flow {flow.name!r} loops without a question")

    def _known(self, turn: _Turn, step: Ask) -> bool:
        """A ZIP question we can skip: we know the ZIP already."""
        if step.kind == "zip" and step.skip_if_known and turn.zip:
            turn.state.vars["zip"] = turn.zip
            return True
        return False

    def _act(self, turn: _Turn, step: Step) -> None:
        """Do what an action step does (a Refer has already replied)."""
        if isinstance(step, Say):
            self._say_text(turn, step.text)
        elif isinstance(step, Handoff):
            self._handoff(turn, step.reason, urgent=step.urgent, text=step.text)
        elif isinstance(step, FollowUp):
            turn.effects.append(ScheduleFollowUp(step.after, step.template, turn.category))
            self._say_text(turn, step.text)
        elif isinstance(step, SetLanguage):
            self._set_language(turn, step.language, always=True)

    # -- what the bot says and does -----------------------------------------------------

    def _say(self, turn: _Turn, key: str | None) -> None:
        if key:
            turn.replies.append(self.text(key, turn.lang))
            turn.options = []

    def _say_text(self, turn: _Turn, text: Text | None) -> None:
        if text:
            turn.replies.append(text.get(turn.lang) or text[self.languages[0]])
            turn.options = []

    def _ask(self, turn: _Turn, step: Ask, header: Text | None = None) -> None:
        if step.kind == "menu":
            turn.replies.append(render_menu(step, turn.lang, header))
        else:
            self._say_text(turn, header or step.text)
        turn.options = self._options(turn, step)

    def _options(self, turn: _Turn, step: Ask) -> list[str]:
        if step.kind == "menu":
            return [o.label.get(turn.lang) or o.label[self.languages[0]] for o in step.options]
        if step.kind == "yes_no":
            return self._yes_no(turn)
        return []

    def _yes_no(self, turn: _Turn) -> list[str]:
        return [self.text(M.OPTION_YES, turn.lang), self.text(M.OPTION_NO, turn.lang)]

    def _offer(self, turn: _Turn, key: str) -> None:
        self._say(turn, key)
        turn.options = self._yes_no(turn)

    def _handoff(self, turn: _Turn, reason: str, *, urgent: bool = False, text: Text | None = None) -> None:
        turn.effects.append(CreateReferral(turn.category, turn.zip, urgent=urgent, reason=reason))
        if text:
            self._say_text(turn, text)
        else:
            self._say(turn, M.HANDOFF_OPEN if turn.ctx.office_open else M.HANDOFF_CLOSED)
        turn.state.vars["handoff"] = True

    def _refer(self, turn: _Turn, step: Refer) -> bool:
        """Reply with up to three places; False when the directory has none.

        A ZIP outside the service area is told so plainly and gets only lines to call.
        """
        turn.state.vars["category"] = step.category
        away = not self.directory.serves(turn.zip)
        matches = self.directory.rank(step.category, zip_code=turn.zip, now=turn.ctx.now, tz=self.tz,
                                      lang=turn.lang, limit=RESOURCE_LIMIT, tags=step.tags, phone_only=away)
        lead = [self.text(M.OUT_OF_AREA, turn.lang, zip=turn.zip or "")] if away else []
        if not matches:
            turn.replies.extend(lead)
            self._say(turn, M.NO_RESOURCES)
            turn.effects.append(RecordUnmet(step.category, "no_resource"))
            return False
        if away:
            intro = self.text(M.BY_PHONE, turn.lang)
        else:
            intro = (step.text or {}).get(turn.lang) or self.text(M.RESOURCES_INTRO, turn.lang)
        turn.replies.extend(_pack(lead + [intro] + [self._resource(m, turn.lang) for m in matches]))
        turn.options = []
        turn.effects.append(CreateReferral(step.category, turn.zip, urgent=False, reason="resources",
                                           resource_ids=tuple(m.service_id for m in matches)))
        return True

    def _resource(self, match: Match, lang: str) -> str:
        """One place: name and phone, then its address (never for a confidential one) and hours."""
        key = M.RESOURCE_LINE if match.address and not match.confidential else M.RESOURCE_HOTLINE
        block = self.text(key, lang, name=match.name[:MAX_FIELD_CHARS], phone=match.phone,
                          address=(match.address or "")[:MAX_FIELD_CHARS], open=self._hours(match, lang))
        return "\n".join(line.strip() for line in block.splitlines() if line.strip())

    def _hours(self, match: Match, lang: str) -> str:
        """Open now and until when, or closed now and when it opens: never hours that are over."""
        if match.open_now:
            if match.open_until:
                return self.text(M.OPEN_UNTIL, lang, time=match.open_until)
            return self.text(M.OPEN_ALL_DAY, lang)
        opening = match.opens
        if opening is None:   # hours unknown
            return ""
        if opening.days == 0:
            return self.text(M.OPENS_TODAY, lang, time=opening.at)
        if opening.days < DAY_NAMES_AHEAD:
            day = self.text(M.DAY_NAMES, lang).split()[opening.on.weekday()]
        else:
            day = self.text(M.DATE, lang, month=str(opening.on.month), day=str(opening.on.day))
        return self.text(M.OPENS_LATER, lang, day=day, time=opening.at)

    # -- the safety net -----------------------------------------------------------------

    def _fallback(self, raw: Any, ctx: Context) -> Outcome:
        """A bug must not leave a resident with no answer: apologise and show the menu."""
        state = _State.load(raw, self.languages)
        lang = state.lang if state else (ctx.language if ctx.language in self.languages else self.languages[0])
        fresh = _State(lang=lang, flow=INTAKE_FLOW, step=MENU_STEP, last_at=ctx.now)
        menu = self.intake.steps[MENU_STEP]
        assert isinstance(menu, Ask)
        return Outcome(fresh.dump(), [self.text(M.RESTARTED, lang), render_menu(menu, lang)], [], [])


def _carrier_effects(keyword: str) -> list[Effect]:
    word = keyword.strip().upper()
    return [OptOut()] if word == "STOP" else [OptIn()] if word == "START" else []


def _pack(parts: list[str]) -> list[str]:
    """Join parts into as few replies as fit, each at most four SMS segments."""
    replies: list[str] = []
    for part in parts:
        joined = f"{replies[-1]}\n\n{part}" if replies else part
        if replies and segments(joined) <= MAX_REPLY_SEGMENTS and len(joined) <= MAX_REPLY_CHARS:
            replies[-1] = joined
        else:
            replies.append(part)
    return replies


class _Blank(dict):
    """format_map values where a missing placeholder reads as empty, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""
