"""The `POST /v1/campaigns` body (DESIGN section 7) and its save-time checks.

`validate_campaign(body)` is the one entry point: it parses the body with the models below and
then applies the rules that span fields (content against fallback, window margins, templates,
Meta's static limits). Every problem is reported at once, as one `ValidationFailed` whose
`errors` name the field (`steps[1].delay.before_window_closes`, `steps[0].email.subject`).
Cross-field rules run only on a body whose shape parsed: they need the parsed values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from channels.messenger.errors import PayloadInvalid
from channels.messenger.payloads import validate_message
from orchestrator.campaigns.cron import parse_cron
from orchestrator.campaigns.durations import parse_duration
from orchestrator.errors import FieldError, ValidationFailed
from orchestrator.policy.send_window import SendWindow
from orchestrator.policy.window import STANDARD_WINDOW
from orchestrator.rendering import RenderError, check_buttons, check_template
from orchestrator.schemas import InputModel

MAX_STEPS = 20
# DESIGN section 7: send windows and cron schedules default to this zone.
DEFAULT_ZONE: Final = "Asia/Ho_Chi_Minh"
# Reference §8 / DESIGN section 8: a Page's Send API budget is 300 messages per second.
MAX_PER_SECOND = 300


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def _cron(value: str) -> str:
    parse_cron(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]
NonEmpty = Annotated[str, Field(min_length=1)]
Purpose = Literal[
    "promotional", "transactional", "event_update", "post_purchase_update", "account_update"
]
EmailStatus = Literal["unconfirmed", "subscribed", "unsubscribed", "bounced", "complained"]
Fallback = Literal["email", "wait_for_window", "skip"]


def _subscribed_only() -> list[EmailStatus]:
    return ["subscribed"]


class Audience(InputModel):
    tags_any: list[NonEmpty] = Field(default_factory=list)
    tags_all: list[NonEmpty] = Field(default_factory=list)
    tags_none: list[NonEmpty] = Field(default_factory=list)
    contact_ids: list[NonEmpty] = Field(default_factory=list)
    email_status: list[EmailStatus] = Field(default_factory=_subscribed_only)
    messenger: Literal["any", "required", "none"] = "any"


class CapturedTrigger(InputModel):
    on: Literal["captured"]
    form_id: NonEmpty


class TagAddedTrigger(InputModel):
    on: Literal["tag_added"]
    tag: NonEmpty


class FirstMessageTrigger(InputModel):
    on: Literal["first_message"]
    page_id: NonEmpty


Trigger = Annotated[
    CapturedTrigger | TagAddedTrigger | FirstMessageTrigger, Field(discriminator="on")
]


class Delay(InputModel):
    """Exactly one of `after` (counted from the previous step's final state, or the run's start)
    and `before_window_closes` (a margin before the contact's Messenger window closes)."""

    after: Duration | None = None
    before_window_closes: Duration | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Delay:
        if (self.after is None) == (self.before_window_closes is None):
            raise ValueError("give exactly one of 'after' and 'before_window_closes'")
        return self

    @property
    def window_relative(self) -> bool:
        return self.before_window_closes is not None

    @property
    def length(self) -> timedelta:
        """The fixed delay, or the margin of a window-relative step."""
        text = self.before_window_closes if self.after is None else self.after
        assert text is not None  # the model validator guarantees one of them
        return parse_duration(text)


class MessengerContent(InputModel):
    """`quick_replies` and `buttons` are in Meta's Send API shape (reference section 2):
    `{"content_type": "text", "title", "payload"}` and `{"type": "web_url"|"postback", ...}`.
    With buttons the message is sent as a button template."""

    text: NonEmpty
    quick_replies: list[dict[str, Any]] = Field(default_factory=list)
    buttons: list[dict[str, Any]] = Field(default_factory=list)


class EmailContent(InputModel):
    subject: NonEmpty
    html: NonEmpty
    text: str | None = None
    buttons: dict[str, dict[str, str]] | None = None


class Step(InputModel):
    delay: Delay
    messenger: MessengerContent | None = None
    email: EmailContent | None = None
    fallback: Fallback
    max_wait: Duration | None = None


class ScheduleAt(InputModel):
    at: AwareDatetime


class ScheduleCron(InputModel):
    cron: Annotated[str, AfterValidator(_cron)]
    timezone: Annotated[str, AfterValidator(_zone)] = DEFAULT_ZONE


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "now"
    for key in ("at", "cron"):
        if (isinstance(value, Mapping) and key in value) or hasattr(value, key):
            return key
    return None


Schedule = Annotated[
    Annotated[Literal["now"], Tag("now")]
    | Annotated[ScheduleAt, Tag("at")]
    | Annotated[ScheduleCron, Tag("cron")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_invalid",
        custom_error_message='schedule is \'now\', {"at": ISO time} or {"cron", "timezone"}',
    ),
]
# pydantic puts the union member it tried in an error's location; the client's path has none.
_UNION_TAGS: Final = {
    "schedule": frozenset({"now", "at", "cron"}),
    "trigger": frozenset({"captured", "tag_added", "first_message"}),
}


class SendWindowSpec(InputModel):
    """Wall-clock hours in the contact's time zone; `end` before `start` crosses midnight."""

    start: str
    end: str

    @model_validator(mode="after")
    def _valid(self) -> SendWindowSpec:
        SendWindow.parse(start=self.start, end=self.end, zone="UTC")
        return self

    def in_zone(self, zone: str) -> SendWindow:
        return SendWindow.parse(start=self.start, end=self.end, zone=zone)


class Throttle(InputModel):
    per_second: Annotated[int, Field(ge=1, le=MAX_PER_SECOND)]


class CampaignSpec(InputModel):
    name: NonEmpty
    page_id: NonEmpty
    purpose: Purpose
    topic: NonEmpty | None = None
    audience: Audience = Audience()
    trigger: Trigger | None = None
    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]
    schedule: Schedule = "now"
    send_window: SendWindowSpec | None = None
    frequency_cap: Annotated[int, Field(ge=1)] | None = None
    # Added to DESIGN's shape: the cap counts promotional sends per contact over this period.
    frequency_cap_period: Duration = "1d"
    throttle: Throttle | None = None


def validate_campaign(body: Mapping[str, Any]) -> CampaignSpec:
    """Parse and check a campaign body; raises one `ValidationFailed` listing every problem."""
    try:
        spec = CampaignSpec.model_validate(body)
    except ValidationError as exc:
        raise _failed([_field_error(item) for item in exc.errors()]) from None
    errors = [error for index, step in enumerate(spec.steps) for error in _step_errors(index, step)]
    if errors:
        raise _failed(errors)
    return spec


def _failed(errors: list[FieldError]) -> ValidationFailed:
    return ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def _field_error(item: Mapping[str, Any]) -> FieldError:
    path = ""
    loc = list(item.get("loc", ()))
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif index > 0 and part in _UNION_TAGS.get(str(loc[index - 1]), ()):
            continue
        else:
            path += ("." if path else "") + str(part)
    kind = str(item.get("type", "invalid"))
    message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown field"
    return FieldError(path or "body", message, kind)


def _step_errors(index: int, step: Step) -> Iterator[FieldError]:
    at = f"steps[{index}]"
    if step.messenger is None and step.email is None:
        yield FieldError(at, "a step needs messenger or email content")
        return
    if step.fallback == "email" and step.email is None:
        yield FieldError(f"{at}.email", "fallback 'email' needs email content")
    if step.messenger is None and step.fallback in ("wait_for_window", "skip"):
        yield FieldError(
            f"{at}.fallback",
            f"a step without messenger content never sends with fallback {step.fallback!r}",
        )
    if step.max_wait is not None:
        if step.fallback != "wait_for_window":
            yield FieldError(
                f"{at}.max_wait", "max_wait applies only to fallback 'wait_for_window'"
            )
        elif parse_duration(step.max_wait) <= timedelta(0):
            yield FieldError(f"{at}.max_wait", "max_wait must be longer than 0")
    if step.delay.before_window_closes is not None:
        yield from _margin_errors(at, step)
    if step.messenger is not None:
        yield from _messenger_errors(f"{at}.messenger", step.messenger)
    if step.email is not None:
        yield from _email_errors(f"{at}.email", step.email)


def _margin_errors(at: str, step: Step) -> Iterator[FieldError]:
    where = f"{at}.delay.before_window_closes"
    margin = step.delay.length
    # At exactly +24h the window is closed (policy/window.py), so the margin is within (0, 24h).
    if not timedelta(0) < margin < STANDARD_WINDOW:
        yield FieldError(where, "the margin must be longer than 0 and shorter than 24h")
    if step.messenger is None:
        yield FieldError(where, "a window-relative step needs messenger content")


def _messenger_errors(at: str, content: MessengerContent) -> Iterator[FieldError]:
    yield from _template_errors(content.text, f"{at}.text")
    # The text is a template whose length is known only per contact; the static shape (quick
    # replies, button count and titles) is checked here with a stand-in text.
    if content.quick_replies:
        try:
            validate_message({"text": "-", "quick_replies": content.quick_replies}, at)
        except PayloadInvalid as exc:
            yield FieldError(exc.field, exc.reason)
    if content.buttons:
        template = {"template_type": "button", "text": "-", "buttons": content.buttons}
        try:
            validate_message({"attachment": {"type": "template", "payload": template}}, at)
        except PayloadInvalid as exc:
            field = exc.field.replace(f"{at}.attachment.payload.buttons", f"{at}.buttons", 1)
            yield FieldError(field, exc.reason)


def _email_errors(at: str, content: EmailContent) -> Iterator[FieldError]:
    yield from _template_errors(content.subject, f"{at}.subject")
    yield from _template_errors(content.html, f"{at}.html")
    if content.text is not None:
        yield from _template_errors(content.text, f"{at}.text")
    try:
        check_buttons(content.buttons, field=f"{at}.buttons")
    except RenderError as exc:
        yield from exc.errors


def _template_errors(source: str, field: str) -> Iterator[FieldError]:
    try:
        check_template(source, field=field)
    except RenderError as exc:
        yield from exc.errors
