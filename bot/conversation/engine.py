"""The conversation engine: (state, inbound text, context) -> (state, replies, effects).

Pure: no web framework, database, Twilio or clock. Time comes in `Context.now`; what
should happen in the world comes back as plain-data effects that the service applies.
Every word a resident reads lives in flows/*.yaml.

The order of checks on every inbound text (Engine._step; tests/test_engine.py checks it):
 1. Twilio already answered a carrier keyword (OptOutType): record it, say nothing; except a
    START ("yes") from someone not opted out while a yes/no question is open: that is the answer.
 2. Danger (the operator's crisis detector): the crisis answer and a crisis hold, from any step, even opted out.
 3. STOP and plain-language revocations; "don't text me" with a safety reason (do not text
    first); START; HELP; SAFE and NOT SAFE (how we may reach them; NOT SAFE is a danger signal
    too); DELETE (asked once, erased on DELETE again; crisis and STOP in between come first).
 4. Opted out: silence.
 5. A caseworker has the conversation: the text is theirs (MENU takes it back).
 6. A crisis hold: stay with the person (MENU ends it).
 7. The newest question owns a bare answer: a check-in sent after the bot's last question takes
    a bare 1/2/3, yes/no or its words (and the listening question, asked after a check-in's
    answer, takes the next one).
 8. A picture or an empty text.
 9. The conversation: idle expiry, the greeting, the global words (MENU, a language, a person,
    thanks), an open offer (the "safe to text this number later?" question is one), then the
    current step. A turn that leaves no question open asks "safe to text later?" once a hand-off
    opened a referral (never in a crisis hold).

A campaign code ("HI IA1129") in a text that starts a conversation is taken out of the text
before any of these checks (so it never hides a crisis or STOP) and comes back as JoinCampaign;
what is left of the text goes on as usual (a code alone reads as a greeting).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.conversation import keywords
from bot.conversation.contact import REPLY_WINDOW, ContactPreference, default_for
from bot.conversation.crisis import CrisisDetector, CrisisKind
from bot.conversation.flows import (
    INTAKE_FLOW,
    MENU_STEP,
    Ask,
    Check,
    Flow,
    FlowSet,
    FollowUp,
    Go,
    Handoff,
    M,
    Option,
    Refer,
    Say,
    SetLanguage,
    Step,
    Text,
    crisis_kind,
    render_menu,
)
from bot.conversation.segments import segments
from bot.directory.resources import clock_label

if TYPE_CHECKING:
    from bot.conversation.matching import Matcher
    from bot.directory.resources import Directory, Match

log = logging.getLogger(__name__)

STATE_VERSION = 1
MAX_REPLY_CHARS = 1600
MAX_REPLY_SEGMENTS = 4
MAX_HOPS = 50  # steps entered in one turn; the checker forbids loops, this is a backstop
MAX_SAVED_TEXT = 500  # a free-text answer kept in the state
MAX_FIELD_CHARS = 80  # a resource name or address from the directory
RESOURCE_LIMIT = 3
DAY_NAMES_AHEAD = 7  # a next opening a week or more away is told by its date, not a day name
TWO_MISSES, NO_RESOURCE = "two_misses", "no_resource"  # the yes/no "want a person?" offers
NEXT_NEED = "next_need"  # the yes/no "you also asked about …" offer
CONTACT = "contact"  # "Is it safe for us to text this number later?" (1 yes, 2 only answer, 3 no)
ERASE = "erase"  # DELETE was asked for: DELETE again erases
CONTACT_DUE = "contact_due"  # state var: a hand-off opened a referral, the question waits its turn
LISTENING = "listening"  # the optional "what would make your block safer?" question
YES_NO = (("yes", ()), ("no", ()))  # a yes/no question's choices: "1" is yes, "2" is no
# Opted out: these are recorded (the preference kept for when they opt back in), never answered.
_QUIET_WHEN_OUT_KEPT = {
    keywords.Compliance.REPLY_ONLY: ContactPreference.REPLY_ONLY,
    keywords.Compliance.SAFE: ContactPreference.ANY,
}
_QUIET_WHEN_OUT = (keywords.Compliance.STOP, *_QUIET_WHEN_OUT_KEPT)


# ---------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class Inbound:
    text: str
    media_count: int = 0
    carrier_keyword: str | None = None  # Twilio OptOutType: "STOP" | "START" | "HELP"


@dataclass(frozen=True)
class Availability:
    """Who can answer the resident, so that what the bot promises is true."""

    on_duty: bool = True  # a caseworker is on duty now
    on_call_told: bool = False  # a text about this resident reached the person on call
    next_open: datetime | None = None  # local start of the next working day's hours
    office_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday is 0
    office_opens: time = time(9, 0)
    office_closes: time = time(17, 0)


@dataclass(frozen=True)
class Context:
    now: datetime  # aware, UTC
    opted_out: bool = False
    handoff_open: bool = False  # a caseworker has claimed an open referral for this resident
    referral_open: bool = False  # the resident has an open referral (a crisis hold ends with it)
    checkin_sent_at: datetime | None = None  # a check-in awaits its answer: when it was sent
    language: str | None = None  # known from the resident row
    zip_code: str | None = None
    idle_hours: int = 24
    hold_hours: int = 24  # CRISIS_HOLD_HOURS
    first_contact: bool = False  # no earlier message from this resident
    can_text: bool = True  # an SMS resident, or a web visitor with a confirmed number
    contact_preference: ContactPreference = ContactPreference.ANY
    contact_chosen: bool = False  # the resident chose the preference herself (else it is a default)
    availability: Availability = field(default_factory=Availability)
    campaign_codes: frozenset[str] = frozenset()  # active campaigns' codes (upper case), for a first text
    checkin_about: str | None = None  # the need of the referral the pending check-in asks about
    checkin_crisis: bool = False  # that referral was a crisis (the listening question is never asked)


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
    reason: str  # "asked_person" | "crisis:<kind>" | "violence" | "two_misses" | "resources" | "more_help"
    resource_ids: tuple[str, ...] = ()

    @property
    def crisis_kind(self) -> str | None:
        return crisis_kind(self.reason)


@dataclass(frozen=True)
class SetContactPreference:
    """How the line may reach the resident, as she chose it: "don't text me, he checks my phone" is
    REPLY_ONLY. (A default, contact.default_for, comes with the referral the service opens.)"""

    preference: ContactPreference


@dataclass(frozen=True)
class Erase:
    """DELETE, confirmed: erase everything this person wrote and their number, as `purge --resident`."""


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
    outcome: str  # "got_help" | "not_yet" | "more_help"


@dataclass(frozen=True)
class RecordUnmet:
    category: str | None
    reason: str  # "no_resource" | "declined"


@dataclass(frozen=True)
class JoinCampaign:
    """A first text held this campaign's code (the service attributes first touch only)."""

    code: str


@dataclass(frozen=True)
class ListeningAnswer:
    """The answer to the listening question: a counted option, or None for their own words."""

    answer: str | None


Effect = (
    OptOut
    | OptIn
    | SetProfile
    | CreateReferral
    | SetContactPreference
    | Erase
    | ScheduleFollowUp
    | RelayToCaseworker
    | EndHandoff
    | CheckinAnswer
    | RecordUnmet
    | JoinCampaign
    | ListeningAnswer
)


@dataclass
class Outcome:
    state: dict  # JSON-serialisable
    replies: list[str]
    options: list[str]  # quick-reply labels of the last question (web chat buttons)
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
    offer: str | None = None  # a pending "want a person?" question
    last_at: datetime | None = None
    hold: str | None = None  # the crisis kind of a crisis hold
    hold_until: datetime | None = None

    @classmethod
    def load(cls, raw: Any, languages: tuple[str, ...]) -> _State | None:
        """Read a saved state, dropping whatever does not fit (it may be old or hand-edited)."""
        if not isinstance(raw, dict) or not raw:
            return None
        text = lambda key: raw[key] if isinstance(raw.get(key), str) else None  # noqa: E731
        misses, lang = raw.get("misses"), text("lang")
        return cls(
            lang=lang if lang in languages else languages[0],
            flow=text("flow"),
            step=text("step"),
            vars=dict(raw["vars"]) if isinstance(raw.get("vars"), dict) else {},
            misses=misses if isinstance(misses, int) and not isinstance(misses, bool) else 0,
            offer=text("offer"),
            last_at=_parse_time(text("last_at")),
            hold=text("hold"),
            hold_until=_parse_time(text("hold_until")),
        )

    def dump(self) -> dict:
        return {
            "v": STATE_VERSION,
            "flow": self.flow,
            "step": self.step,
            "lang": self.lang,
            "vars": self.vars,
            "misses": self.misses,
            "offer": self.offer,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "hold": self.hold,
            "hold_until": self.hold_until.isoformat() if self.hold_until else None,
        }

    def fresh(self) -> _State:
        """A new session that keeps what we know about the person (language, ZIP) and a crisis hold."""
        keep = {k: v for k, v in self.vars.items() if k in ("zip", "greeted", CONTACT_DUE)}
        return _State(lang=self.lang, vars=keep, last_at=self.last_at, hold=self.hold, hold_until=self.hold_until)

    def holding(self, now: datetime) -> bool:
        return bool(self.hold and self.hold_until and now < self.hold_until)

    def idle(self, now: datetime, idle_hours: int) -> bool:
        """No text for longer than a session lasts: the next one starts afresh."""
        return bool(self.last_at and now - self.last_at > timedelta(hours=idle_hours))

    def end_hold(self) -> None:
        self.hold = self.hold_until = None

    def end(self) -> None:
        self.flow = self.step = self.offer = None
        self.misses = 0


def _parse_time(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if moment and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
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
    preference: ContactPreference = ContactPreference.ANY  # as this turn leaves it
    chosen: bool = False  # she chose it (before, or in this turn); else it is a default

    def __post_init__(self) -> None:
        self.preference, self.chosen = self.ctx.contact_preference, self.ctx.contact_chosen

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

    def __init__(
        self,
        flows: FlowSet,
        matcher: Matcher,
        directory: Directory,
        tz: ZoneInfo,
        *,
        crisis: CrisisDetector,
        strict: bool = False,
    ):
        self.flows, self.matcher, self.directory, self.tz = flows, matcher, directory, tz
        self.crisis = crisis  # built from the same vocabulary as the matcher; the service's loop guard uses it too
        self.strict = strict  # tests: let exceptions through instead of the safe fallback
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

    def holding(self, state: dict | None, now: datetime) -> bool:
        """The saved conversation is in a crisis hold (the service's loop guard never silences it)."""
        saved = _State.load(state, self.languages)
        return bool(saved and saved.holding(now))

    def may_start(self, state: dict | None, now: datetime, idle_hours: int) -> bool:
        """A text now would start a conversation (none saved, or idle): only then is a campaign code read."""
        saved = _State.load(state, self.languages)
        return saved is None or saved.idle(now, idle_hours)

    def every_reply(self, lang: str, now: datetime, zip_code: str | None) -> list[tuple[str, str]]:
        """(where, text) for every reply the bot can send in `lang`: each system text (a {promise} in
        each of its forms), each flow text and question, and each list of places from `zip_code` at
        `now`. What `peaceline check` measures in SMS segments."""
        later = Availability(
            on_duty=False, next_open=(now + timedelta(days=2)).astimezone(self.tz).replace(hour=9, minute=0)
        )
        situations = [
            Context(now=now, zip_code=zip_code),
            Context(now=now, zip_code=zip_code, availability=later),
            Context(now=now, zip_code=zip_code, availability=replace(later, on_call_told=True)),
            Context(now=now, zip_code=zip_code, contact_preference=ContactPreference.REPLY_ONLY),
            Context(now=now, zip_code=zip_code, contact_preference=ContactPreference.NONE),
        ]
        out: list[tuple[str, str]] = []

        def said(where: str, say: Any, *, promised: bool) -> None:
            for ctx in situations if promised else situations[:1]:
                turn = _Turn(_State(lang=lang), ctx, "")
                say(turn)
                out.extend((where, reply) for reply in turn.replies)

        menu = self.intake.steps[MENU_STEP]
        options = menu.options if isinstance(menu, Ask) else ()  # the checker makes intake.menu a menu question
        need = max((o.label.get(lang, "") for o in options), key=len, default="")
        kinds = [M.crisis(k) for k in M.CRISIS_KINDS] + [M.hold(k) for k in M.CRISIS_KINDS]
        for key in (*M.REPLIES, *kinds):
            promised = "{promise}" in self.flows.messages[key].get(lang, "")
            said(
                key,
                lambda t, key=key, promised=promised: self._say(t, key, promise=promised, need=need, code="123456"),
                promised=promised,
            )
        for flow in self.flows.flows.values():
            for step in flow.steps.values():
                self._every_step_reply(flow, step, said)
        return out

    def _every_step_reply(self, flow: Flow, step: Step, said: Any) -> None:
        where = f"{flow.name}.{step.id}"
        if isinstance(step, Ask):
            said(where, lambda t: self._ask(t, step), promised=False)
            if step.hint:
                said(
                    f"{where} (hint)",
                    lambda t: (
                        self._ask(t, step, header=step.hint) if step.kind == "menu" else self._say_text(t, step.hint)
                    ),
                    promised=False,
                )
        elif isinstance(step, Handoff):
            said(where, lambda t: self._handoff(t, step.reason, urgent=step.urgent, text=step.text), promised=True)
        elif isinstance(step, Refer):
            said(where, lambda t: self._refer(t, step), promised=False)
        elif isinstance(step, (Say, FollowUp)) and step.text:
            said(where, lambda t: self._say_text(t, step.text), promised=False)

    # -- the order of checks ------------------------------------------------------------

    def _step(self, raw: dict | None, inbound: Inbound, ctx: Context) -> Outcome:
        if ctx.now.tzinfo is None:
            ctx = replace(ctx, now=ctx.now.replace(tzinfo=UTC))
        text = inbound.text.strip() if isinstance(inbound.text, str) else ""
        saved = _State.load(raw, self.languages)
        code = self._campaign_code(text, saved, ctx)
        if code:
            text = _without(text, code)
        quiet = Outcome(saved.dump() if saved else {}, [], [], [])
        if inbound.carrier_keyword and not self._answers_yes_no(inbound, saved, ctx):
            quiet.effects.extend(_carrier_effects(inbound.carrier_keyword))  # Twilio already answered:
            return quiet  # never reply twice
        turn = _Turn(saved or _State(lang=self._language(text, None, ctx)), ctx, text)
        if code:
            turn.effects.append(JoinCampaign(code))
        if saved is None and text:
            self._set_language(turn, turn.lang)
        if turn.state.hold and not (turn.state.holding(ctx.now) and ctx.referral_open):
            turn.state.end_hold()  # the time ran out, or a caseworker closed the case
        kind = self.crisis.detect(text) if text else None
        word = keywords.classify(text, opted_out=ctx.opted_out) if text and not kind else None
        if kind:
            self._crisis(turn, kind)
        elif word in _QUIET_WHEN_OUT and ctx.opted_out:
            if word in _QUIET_WHEN_OUT_KEPT:  # kept for when they opt back in; said nothing
                quiet.effects.append(SetContactPreference(_QUIET_WHEN_OUT_KEPT[word]))
            return quiet  # already out: only one confirmation, ever
        elif word:
            self._compliance(turn, word)
        elif ctx.opted_out:
            return quiet
        elif ctx.handoff_open:
            turn.state.end_hold()  # a person has taken over
            self._in_handoff(turn)
        elif turn.state.hold:
            self._hold(turn)
        elif self._checkin_is_newest(saved, ctx) and (answer := self._checkin_answer(text)):
            self._checkin(turn, answer)
        elif not text and not code:  # a picture or an empty text: not a miss, and not a start either
            self._say(turn, M.TEXT_ONLY)
            return Outcome(turn.state.dump(), turn.replies, [], [])
        else:
            self._converse(turn, saved)
        turn.state.last_at = ctx.now
        return turn.outcome()

    def _campaign_code(self, text: str, saved: _State | None, ctx: Context) -> str | None:
        """An active campaign's code in a text that starts a conversation: exact, ignoring case."""
        if not ctx.campaign_codes or (saved is not None and not self._idle(saved, ctx)):
            return None
        return next((w for w in _WORD.findall(text.upper()) if w in ctx.campaign_codes), None)

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
        turn.state.vars["greeted"] = True  # now, or before this session (an urgent flow may let it wait)
        word = self.matcher.global_word(turn.text)
        if word == "menu" and first:
            self._menu(turn, M.GREETING)
        elif word == "menu":
            self._menu(turn, prefix)
        elif word and word.startswith("lang:") and word[5:] in self.languages:
            self._switch_language(turn, word[5:], prefix, first)
        elif word == "person":
            self._say(turn, M.GREETING if first else prefix)
            self._handoff(turn, "asked_person")
            turn.state.end()
        elif word == "thanks" and not first:  # never the whole menu for a "thank you"
            if turn.state.flow is None:  # "gracias": answer in the words they used
                self._set_language(turn, self.matcher.language(turn.text) or turn.lang)
            self._say(turn, M.HANDOFF_WAITING if turn.state.vars.get("handoff") else M.THANKS)
        elif turn.state.offer:
            self._answer_offer(turn)
        elif turn.state.flow is None:
            if not prefix and not first:  # a new need in a live session: follow its language
                self._set_language(turn, self.matcher.language(turn.text) or turn.lang)
            self._start(turn, prefix, first)
        else:
            self._answer(turn)
        self._ask_contact(turn)

    # -- crisis, compliance, hand-off, check-in -----------------------------------------

    def _crisis(self, turn: _Turn, kind: CrisisKind) -> None:
        """The number to call first, what happens next, and a crisis hold: no menus or questions."""
        written = self.matcher.language(turn.text)
        if written in self.languages and written != turn.lang:  # answer in the words they used
            self._set_language(turn, written)
        if keywords.asks_not_to_text_first(turn.text):  # "he will kill me if he sees this, don't text me"
            self._set_preference(turn, ContactPreference.REPLY_ONLY)
        self._default_preference(turn, crisis=True)
        key = M.crisis(kind)
        self._say(turn, key if key in self.flows.messages else M.CRISIS, promise=True)
        self._opening(turn)
        turn.effects.append(CreateReferral(turn.category, turn.zip, urgent=True, reason=f"crisis:{kind}"))
        self._start_hold(turn, kind)

    def _start_hold(self, turn: _Turn, kind: str) -> None:
        turn.state.end()  # the question they were on waits: a hold asks nothing
        turn.state.hold, turn.state.hold_until = kind, turn.ctx.now + timedelta(hours=turn.ctx.hold_hours)

    def _hold(self, turn: _Turn) -> None:
        """A text during a crisis hold: stay with the person; raise the case again; MENU ends the hold."""
        word = self.matcher.global_word(turn.text)
        if word == "menu":
            turn.state.end_hold()
            first = not turn.state.vars.get("greeted")  # a first text in crisis: the greeting waited
            turn.state.vars["greeted"] = True
            self._menu(turn, M.GREETING if first else None)
            return
        if word and word.startswith("lang:") and word[5:] in self.languages:
            self._set_language(turn, word[5:], always=True)
        turn.state.offer = None  # a DELETE asked before the hold waits for nothing now
        self._default_preference(turn, crisis=True)
        kind = turn.state.hold or ""
        need = self.flows.first_need(self.matcher.categories(turn.text)) if word is None else None
        self._say(turn, M.hold(kind) if M.hold(kind) in self.flows.messages else M.CRISIS, promise=True)
        if need:
            turn.replies[-1] += " " + self.text(M.HOLD_NEED_NOTED, turn.lang)
        turn.effects.append(CreateReferral(need, turn.zip, urgent=True, reason=f"crisis:{kind}"))

    def _compliance(self, turn: _Turn, word: keywords.Compliance) -> None:
        if word == keywords.Compliance.STOP:
            turn.effects.append(OptOut())
            self._say(turn, M.STOP)
            turn.state.end()
        elif word == keywords.Compliance.REPLY_ONLY:
            self._set_preference(turn, ContactPreference.REPLY_ONLY)
            self._say(turn, M.REPLY_ONLY_ACK)
            turn.state.end()
        elif word == keywords.Compliance.START:
            turn.effects.append(OptIn())
            self._say(turn, M.START)
            turn.state.end_hold()
            self._menu(turn, None)
        elif word == keywords.Compliance.HELP:
            self._say(turn, M.HELP)
        else:
            self._decides(turn, word)

    def _decides(self, turn: _Turn, word: keywords.Compliance) -> None:
        """SAFE, NOT SAFE and DELETE: the resident decides how we reach them, and may erase it all."""
        if word == keywords.Compliance.DELETE and turn.state.offer == ERASE:
            turn.effects.append(Erase())
            self._say(turn, M.ERASED)
            turn.state = _State(lang=turn.lang)  # erased with the rest: the next text is a first contact
            return
        if turn.state.offer in (CONTACT, ERASE):
            turn.state.offer = None  # answered, or asked again in other words
        if word == keywords.Compliance.DELETE:
            self._say(turn, M.ERASE_CONFIRM)
            turn.state.offer = ERASE
        elif word == keywords.Compliance.SAFE:
            self._choose_contact(turn, ContactPreference.ANY)
        else:  # NOT SAFE from a survivor: a danger signal too
            self._set_preference(turn, ContactPreference.NONE)
            self._say(turn, M.NOT_SAFE)
            turn.effects.append(CreateReferral(turn.category, turn.zip, urgent=True, reason="not_safe"))

    def _set_preference(self, turn: _Turn, preference: ContactPreference) -> None:
        turn.preference, turn.chosen = preference, True
        if preference != turn.ctx.contact_preference or not turn.ctx.contact_chosen:
            turn.effects.append(SetContactPreference(preference))

    def _default_preference(self, turn: _Turn, *, crisis: bool = False) -> None:
        """Until she answers: do not text first after a crisis or in the safety, violence and loss flows.
        The service records the same default from the referral it opens (contact.default_for)."""
        default = default_for(turn.category, crisis)
        if not turn.ctx.contact_chosen and turn.preference == ContactPreference.ANY != default:
            turn.preference = default

    def _opening(self, turn: _Turn) -> None:
        """The conversation's first hand-off to a person: "safe to text this number later?" is due
        (asked by `_ask_contact` when no other question is open)."""
        if not turn.state.vars.get("handoff"):
            turn.state.vars[CONTACT_DUE] = True

    def _ask_contact(self, turn: _Turn) -> None:
        """Ask how we may reach them once a hand-off opened a referral: at the end of a turn that leaves
        no other question open, never in a crisis hold, and only to someone we could text."""
        state = turn.state
        if not state.vars.get(CONTACT_DUE) or state.flow or state.offer or state.holding(turn.ctx.now):
            return
        if not turn.ctx.can_text:
            return
        state.vars.pop(CONTACT_DUE)
        state.offer = CONTACT
        self._say(turn, M.CONTACT_ASK)
        turn.options = [self.text(key, turn.lang) for key in (M.OPTION_YES, M.OPTION_REPLY_ONLY, M.OPTION_NO)]

    def _answer_contact(self, turn: _Turn) -> None:
        """1 yes, 2 only answer when I text first, 3 no (or their words, or yes / no); else a new text."""
        found = self.matcher.choice(turn.text, self.flows.contact_answers)
        if found is None and (yes := self.matcher.yes_no(turn.text)) is not None:
            found = ContactPreference.ANY if yes else ContactPreference.NONE
        if found is None:
            self._start(turn, None, False)
            return
        self._choose_contact(turn, ContactPreference(found))

    def _choose_contact(self, turn: _Turn, preference: ContactPreference) -> None:
        self._set_preference(turn, preference)
        acks = {
            ContactPreference.ANY: M.CONTACT_ANY_ACK,
            ContactPreference.REPLY_ONLY: M.REPLY_ONLY_ACK,
            ContactPreference.NONE: M.CONTACT_NONE_ACK,
        }
        self._say(turn, acks[preference])

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
        answer = self.matcher.yes_no(text)
        return None if answer is None else "got_help" if answer else "not_yet"

    def _yes(self, text: str) -> bool | None:
        """The answer to a yes/no question: "1" or yes is True, "2" or no is False."""
        return {"yes": True, "no": False}.get(self.matcher.choice(text, YES_NO) or "")

    def _checkin(self, turn: _Turn, answer: str) -> None:
        turn.effects.append(CheckinAnswer(answer))
        turn.state = turn.state.fresh()
        if answer == "more_help":
            self._handoff(turn, "more_help")
        elif answer == "got_help":
            self._say(turn, M.CHECKIN_GOT_HELP)
            if self._may_listen(turn):
                self._say(turn, M.LISTENING_ASK)
                turn.state.offer = LISTENING
        else:
            self._say(turn, M.CHECKIN_NOT_YET, promise=True)
        self._ask_contact(turn)

    def _may_listen(self, turn: _Turn) -> bool:
        """The listening question, only as a reply, and never after a crisis, in a crisis hold, in a
        flow that opts out of it (safety, violence, loss), or to someone who asked not to be texted first."""
        ctx, flow = turn.ctx, self.flows.for_category(turn.ctx.checkin_about)
        return (
            not ctx.opted_out
            and not ctx.checkin_crisis
            and not turn.state.hold
            and turn.preference == ContactPreference.ANY
            and (flow is None or flow.listening)
        )

    def _listening_answer(self, turn: _Turn) -> None:
        """A counted option by its number or words; a need named instead starts that need; any
        other words are their own answer (kept in the thread, never counted)."""
        answer = self.matcher.choice(turn.text, self.flows.listening_answers)
        if answer is None and self.matcher.categories(turn.text):
            self._start(turn, None, False)
            return
        turn.effects.append(ListeningAnswer(answer))
        self._say(turn, M.LISTENING_THANKS)

    def _checkin_is_newest(self, saved: _State | None, ctx: Context) -> bool:
        """A check-in awaits its answer and the bot asked nothing since it went out: a bare 1, 2, 3
        or yes belongs to it, even inside a live session ("thank you", a check-in, then "2")."""
        if ctx.checkin_sent_at is None:
            return False
        asking = saved is not None and bool(saved.flow or saved.offer) and not self._idle(saved, ctx)
        return not asking or saved is None or saved.last_at is None or ctx.checkin_sent_at > saved.last_at

    def _answers_yes_no(self, inbound: Inbound, saved: _State | None, ctx: Context) -> bool:
        """Twilio's START for a "yes" from someone who never opted out, while a yes/no question is
        open: the resident answered us, so the bot answers and records it (Twilio's own reply aside)."""
        if (inbound.carrier_keyword or "").strip().upper() != "START" or ctx.opted_out or saved is None:
            return False
        step = self._current_ask(saved)
        return bool(saved.offer or (step and step.kind == "yes_no") or self._checkin_is_newest(saved, ctx))

    # -- starting, the menu, languages --------------------------------------------------

    def _start(self, turn: _Turn, prefix: str | None, first: bool) -> None:
        """A text outside any question: a named need goes straight to its flow; with two needs,
        the one to answer first ("my son got shot and we need a lawyer"), then the other is offered."""
        needs = self.matcher.categories(turn.text)
        flow = self.flows.for_category(self.flows.first_need(needs))
        if flow:
            later = [n for n in needs if n != flow.category and self.flows.for_category(n)]
            if flow.urgent and first:  # the greeting waits, as after a crisis answer
                turn.state.vars.pop("greeted", None)
            else:
                self._say(turn, M.GREETING if first else prefix)
            self._begin(turn, flow)
            if later:
                turn.state.vars["next_need"] = later[0]
                if turn.state.flow is None:  # the flow ended at once (no question): offer it now
                    self._offer_next_need(turn)
        elif turn.state.vars.get("handoff") and not prefix:
            self._say(turn, M.HANDOFF_WAITING)
        elif first:
            self._menu(turn, M.GREETING)
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
        return state.idle(ctx.now, ctx.idle_hours)

    # -- answering a question -----------------------------------------------------------

    def _current_ask(self, state: _State) -> Ask | None:
        flow = self.flows.flows.get(state.flow or "")
        step = flow.steps.get(state.step or "") if flow else None
        return step if isinstance(step, Ask) else None

    def _answer(self, turn: _Turn) -> None:
        step = self._current_ask(turn.state)
        if step is None:  # the flow was edited under a live session
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
        if target_flow is not flow:
            self._foresee(turn, target_flow)
        self._enter(turn, target_flow, target)

    def _parse(self, turn: _Turn, step: Ask) -> tuple[Flow, str | None] | None:
        """(flow, next step) for a usable answer, None for a miss."""
        flow = self.flows.flows[turn.state.flow or ""]
        if step.kind == "menu":
            option = self._choose(step, turn.text)
            if option is None:
                return None
            self._save(turn, step, option.value)
            return self._route(flow, option)
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
            return self._yes(text)
        if step.kind == "number":
            number = self.matcher.number(text)
            fits = (
                number is not None
                and (step.min is None or number >= step.min)
                and (step.max is None or number <= step.max)
            )
            return number if fits else None
        return text[:MAX_SAVED_TEXT]

    def _parse_zip(self, turn: _Turn, step: Ask, flow: Flow) -> tuple[Flow, str | None] | None:
        zip_code = self.matcher.zip_code(turn.text)
        if zip_code:
            turn.state.vars["zip"] = zip_code
            if zip_code != turn.ctx.zip_code:
                turn.effects.append(SetProfile(zip_code=zip_code))
            return flow, step.next
        if self.matcher.yes_no(turn.text) is False or self.matcher.unsure(turn.text):  # "no", "idk": rank without
            return flow, step.next
        return None

    def _choose(self, step: Ask, text: str) -> Option | None:
        """The option a menu answer picks: its number, label or words, else the need it names."""
        choices = [(o.value, (*o.label.values(), *o.words)) for o in step.options]
        value = self.matcher.choice(text, choices) or self.matcher.category(text)
        return next((o for o in step.options if o.value == value), None)

    def _route(self, flow: Flow, option: Option) -> tuple[Flow, str | None]:
        """Where a menu option leads: a step of this flow, or the start of another."""
        if option.go:
            return self.flows.flows[option.go], self.flows.flows[option.go].start
        return flow, option.next

    def _save(self, turn: _Turn, step: Ask, value: Any) -> None:
        if step.save:
            turn.state.vars[step.save] = value

    def _miss(self, turn: _Turn, flow: Flow, step: Ask) -> None:
        """Ask again with a hint; after two misses, offer a person."""
        other = self.flows.for_category(self.matcher.category(turn.text))
        if other and other is not flow and step.kind != "text":
            self._begin(turn, other)  # a new need named mid-question: follow the resident
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
        """The answer to "want a person to text you?" (or to "you also asked about …")."""
        offer, turn.state.offer = turn.state.offer, None
        if offer == LISTENING:
            self._listening_answer(turn)
            return
        yes = self._yes(turn.text)
        step = self._current_ask(turn.state)
        if offer == CONTACT:
            self._answer_contact(turn)
        elif offer == ERASE and step:  # not DELETE again: nothing is erased; the question they were on takes it
            self._answer(turn)
        elif offer == ERASE:
            self._start(turn, None, False)
        elif offer == NEXT_NEED:
            self._answer_next_need(turn, yes)
        elif yes:
            self._handoff(turn, TWO_MISSES if offer == TWO_MISSES else "asked_person")
            turn.state.end()
        elif offer == TWO_MISSES and step and yes is False:
            self._say(turn, M.TRY_AGAIN)
            self._ask(turn, step)
        elif offer == TWO_MISSES and step:
            self._answer(turn)  # not a yes or no: maybe a better answer to the question
        elif yes is False:
            self._say(turn, M.OFFER_DECLINED)
            turn.state.end()
        else:
            turn.state.end()
            self._start(turn, None, False)

    def _offer_next_need(self, turn: _Turn) -> None:
        """After the first of two needs: offer the other one (never in a crisis hold)."""
        need = turn.state.vars.get("next_need")
        if not isinstance(need, str) or turn.state.hold:
            return
        turn.state.offer = NEXT_NEED
        self._say(turn, M.NEXT_NEED_OFFER, need=self._need_label(need, turn.lang))
        turn.options = self._yes_no(turn)

    def _answer_next_need(self, turn: _Turn, yes: bool | None) -> None:
        need = turn.state.vars.pop("next_need", None)
        flow = self.flows.for_category(need if isinstance(need, str) else None)
        if yes and flow:
            self._begin(turn, flow)
        elif yes is False or not flow:
            self._say(turn, M.OFFER_DECLINED)
        else:
            self._start(turn, None, False)  # not a yes or no: read it as a new text

    def _need_label(self, need: str, lang: str) -> str:
        """A need as the menu names it ("A lawyer")."""
        menu = self.intake.steps[MENU_STEP]
        option = next((o for o in menu.options if o.value == need), None) if isinstance(menu, Ask) else None
        return (option.label.get(lang) or option.label[self.languages[0]]) if option else need

    # -- walking the steps --------------------------------------------------------------

    def _begin(self, turn: _Turn, flow: Flow) -> None:
        if flow.category:
            turn.state.vars["category"] = flow.category
        self._foresee(turn, flow)
        self._enter(turn, flow, flow.start)

    def _foresee(self, turn: _Turn, flow: Flow) -> None:
        """The words that named the need may answer a later menu too ("toothache": teeth, not
        body or mind): a menu with `skip_if_known` keeps the option they name as its answer."""
        for step in flow.steps.values():
            if isinstance(step, Ask) and step.kind == "menu" and step.skip_if_known and step.save:
                named = self.matcher.named_option(turn.text, [(o.value, o.words) for o in step.options])
                turn.state.vars[step.save] = named

    def _enter(self, turn: _Turn, flow: Flow, step_id: str | None) -> None:
        """Run steps from `step_id` until a question (wait for the answer) or the end."""
        for _ in range(MAX_HOPS):
            step = flow.steps.get(step_id) if step_id else None
            if step is None:
                turn.state.end()
                self._offer_next_need(turn)
                return
            if isinstance(step, Check):
                step_id = step.on["yes" if self._check(turn, step.condition) else "no"]
                continue
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
            if isinstance(step, Ask) and step.kind == "menu":  # answered by the words that named the need
                option = next(o for o in step.options if o.value == turn.state.vars.get(step.save or ""))
                flow, step_id = self._route(flow, option)
                if flow.category:
                    turn.state.vars["category"] = flow.category
                continue
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

    @staticmethod
    def _check(turn: _Turn, condition: str) -> bool:
        """What a `check` step asks of the resident."""
        return {"can_text": turn.ctx.can_text and turn.preference == ContactPreference.ANY}[condition]

    def _known(self, turn: _Turn, step: Ask) -> bool:
        """A question we can skip: we know the ZIP already, or the words that named the need chose an option."""
        if step.kind == "zip" and step.skip_if_known and turn.zip:
            turn.state.vars["zip"] = turn.zip
            return True
        if step.kind == "menu" and step.skip_if_known:
            return any(o.value == turn.state.vars.get(step.save or "") for o in step.options)
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

    def _say(self, turn: _Turn, key: str | None, *, promise: bool = False, **values: str) -> None:
        """Say a system text; with `promise`, its {promise} is what truly happens next."""
        if key:
            if promise:
                values["promise"] = self._promise(turn)
            turn.replies.append(self.text(key, turn.lang, **values))
            turn.options = []

    def _say_text(self, turn: _Turn, text: Text | None) -> None:
        if text:
            template = text.get(turn.lang) or text[self.languages[0]]
            promise = self._promise(turn) if "{promise}" in template else ""
            turn.replies.append(template.format_map(_Blank(promise=promise)) if promise else template)
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

    # -- promises: only what someone will do -------------------------------------------

    def _promise(self, turn: _Turn) -> str:
        """What happens next, true to who is on duty or on call and to how we may reach them."""
        lang, ctx, who = turn.lang, turn.ctx, turn.ctx.availability
        if turn.preference == ContactPreference.NONE:
            return self.text(M.PROMISE_NONE, lang)
        if turn.preference == ContactPreference.REPLY_ONLY and (turn.chosen or not self._answerable(who, ctx.now)):
            return self.text(M.PROMISE_REPLY_ONLY, lang, hours=self._office_hours(who, lang))
        if not ctx.can_text:  # a web visitor with no number: the answer comes on the page
            if who.on_call_told and not who.on_duty:
                return self.text(M.PROMISE_WEB_ON_CALL, lang)
            if who.on_duty:
                return self.text(M.PROMISE_WEB_SOON, lang)
            return self.text(M.PROMISE_WEB_LATER, lang, when=self._when(who, ctx.now, lang))
        if who.on_duty:
            return self.text(M.PROMISE_SOON, lang)
        if who.on_call_told:
            return self.text(M.PROMISE_ON_CALL, lang)
        return self.text(M.PROMISE_LATER, lang, when=self._when(who, ctx.now, lang))

    @staticmethod
    def _answerable(who: Availability, now: datetime) -> bool:
        """Someone may answer within REPLY_WINDOW of this text (all "do not text first" allows)."""
        return who.on_duty or who.on_call_told or (who.next_open is not None and who.next_open - now <= REPLY_WINDOW)

    def _when(self, who: Availability, now: datetime, lang: str) -> str:
        """The next working day's start, by name: "today after 9am", "tomorrow morning", "Monday morning"."""
        if who.next_open is None:
            return ""
        opens = who.next_open
        days = (opens.date() - now.astimezone(opens.tzinfo).date()).days
        part = self.text(M.PART_MORNING if opens.hour < 12 else M.PART_AFTERNOON, lang)
        if days <= 0:
            return self.text(M.WHEN_TODAY, lang, time=_clock(opens.time()))
        if days == 1:
            return self.text(M.WHEN_TOMORROW, lang, part=part)
        return self.text(M.WHEN_DAY, lang, day=self.text(M.DAY_NAMES, lang).split()[opens.weekday()], part=part)

    def _office_hours(self, who: Availability, lang: str) -> str:
        """Office hours as "Mon-Fri 9am-5pm"."""
        names = self.text(M.DAY_SHORT, lang).split()
        runs: list[list[int]] = []
        for day in sorted(who.office_days):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        days = ",".join(names[r[0]] if len(r) == 1 else f"{names[r[0]]}-{names[r[-1]]}" for r in runs)
        return f"{days} {_clock(who.office_opens)}-{_clock(who.office_closes)}"

    def _offer(self, turn: _Turn, key: str) -> None:
        self._say(turn, key)
        turn.options = self._yes_no(turn)

    def _handoff(self, turn: _Turn, reason: str, *, urgent: bool = False, text: Text | None = None) -> None:
        self._default_preference(turn, crisis=crisis_kind(reason) is not None)
        self._opening(turn)
        turn.effects.append(CreateReferral(turn.category, turn.zip, urgent=urgent, reason=reason))
        if text:
            self._say_text(turn, text)
        else:
            self._say(turn, M.HANDOFF, promise=True)
        turn.state.vars["handoff"] = True
        kind = crisis_kind(reason)
        if kind:  # "are you safe?" "no": a crisis answer, so a crisis hold
            self._start_hold(turn, kind)

    def _refer(self, turn: _Turn, step: Refer) -> bool:
        """Reply with up to three places; False when the directory has none.

        A ZIP outside the service area is told so plainly and gets only lines to call.
        """
        turn.state.vars["category"] = step.category
        away = not self.directory.serves(turn.zip)
        matches = self.directory.rank(
            step.category,
            zip_code=turn.zip,
            now=turn.ctx.now,
            tz=self.tz,
            lang=turn.lang,
            limit=RESOURCE_LIMIT,
            tags=step.tags,
            phone_only=away,
        )
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
        turn.effects.append(
            CreateReferral(
                step.category,
                turn.zip,
                urgent=False,
                reason="resources",
                resource_ids=tuple(m.service_id for m in matches),
            )
        )
        return True

    def _resource(self, match: Match, lang: str) -> str:
        """One place: name and phone, then its address (never for a confidential one) and hours."""
        key = M.RESOURCE_LINE if match.address and not match.confidential else M.RESOURCE_HOTLINE
        block = self.text(
            key,
            lang,
            name=match.name[:MAX_FIELD_CHARS],
            phone=match.phone,
            address=(match.address or "")[:MAX_FIELD_CHARS],
            open=self._hours(match, lang),
        )
        return "\n".join(line.strip() for line in block.splitlines() if line.strip())

    def _hours(self, match: Match, lang: str) -> str:
        """Open now and until when, or closed now and when it opens: never hours that are over."""
        if match.open_now:
            if match.open_until:
                return self.text(M.OPEN_UNTIL, lang, time=match.open_until)
            return self.text(M.OPEN_ALL_DAY, lang)
        opening = match.opens
        if opening is None:  # hours unknown
            return ""
        if opening.days == 0:
            return self.text(M.OPENS_TODAY, lang, time=opening.at)
        if opening.days < DAY_NAMES_AHEAD:
            day = self.text(M.DAY_SHORT, lang).split()[opening.on.weekday()]
        else:
            day = self.text(M.DATE, lang, month=str(opening.on.month), day=str(opening.on.day))
        return self.text(M.OPENS_LATER, lang, day=day, time=opening.at)

    # -- the safety net -----------------------------------------------------------------

    def _fallback(self, raw: Any, ctx: Context) -> Outcome:
        """A bug must not leave a resident with no answer: apologise and show the menu (in a crisis
        hold, the crisis line instead: never a menu)."""
        state = _State.load(raw, self.languages)
        lang = state.lang if state else (ctx.language if ctx.language in self.languages else self.languages[0])
        if state and state.holding(ctx.now):
            state.last_at = ctx.now
            return Outcome(state.dump(), [self.text(M.CRISIS, lang, promise="")], [], [])
        fresh = _State(lang=lang, flow=INTAKE_FLOW, step=MENU_STEP, last_at=ctx.now)
        menu = self.intake.steps[MENU_STEP]
        assert isinstance(menu, Ask)
        return Outcome(fresh.dump(), [self.text(M.RESTARTED, lang), render_menu(menu, lang)], [], [])


def _clock(at: time) -> str:
    """9am, 8:30am, 5pm."""
    return clock_label(at.hour * 60 + at.minute)


_WORD = re.compile(r"[0-9A-Z]+")


def _without(text: str, code: str) -> str:
    """The text with the campaign code taken out ("HI IA1129" -> "HI")."""
    return " ".join(re.sub(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", " ", text, flags=re.IGNORECASE).split())


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
