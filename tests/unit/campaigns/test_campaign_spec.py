"""`validate_campaign`: the DESIGN section 7 body, and every refusal with its field path."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.campaigns.cron import parse_cron
from orchestrator.campaigns.durations import parse_duration
from orchestrator.campaigns.spec import (
    CapturedTrigger,
    FirstMessageTrigger,
    ScheduleAt,
    ScheduleCron,
    TagAddedTrigger,
    validate_campaign,
)
from orchestrator.errors import ValidationFailed

DESIGN_EXAMPLE: dict[str, Any] = {
    "name": "Khuyến mãi tháng 12",
    "page_id": "104...",
    "purpose": "promotional",
    "topic": "sale",
    "audience": {
        "tags_any": ["vip"],
        "tags_all": [],
        "tags_none": ["staff"],
        "contact_ids": [],
        "email_status": ["subscribed"],
        "messenger": "any",
    },
    "trigger": None,
    "steps": [
        {
            "delay": {"after": "0s"},
            "messenger": {
                "text": "Chào {{ contact.name | default('bạn') }}!",
                "quick_replies": [],
                "buttons": [],
            },
            "email": {
                "subject": "Ưu đãi cho bạn",
                "html": "<p>...</p>",
                "text": "...",
                "buttons": {
                    "support": {"vi": "Nhận hỗ trợ", "en": "Get support"},
                    "subscribe": {
                        "vi": "Đăng ký nhận thông báo",
                        "en": "Subscribe to notifications",
                    },
                },
            },
            "fallback": "email",
            "max_wait": None,
        },
        {
            "delay": {"before_window_closes": "1h"},
            "messenger": {"text": "..."},
            "email": None,
            "fallback": "wait_for_window",
            "max_wait": "3d",
        },
    ],
    "schedule": "now",
    "send_window": None,
    "frequency_cap": 2,
    "throttle": {"per_second": 50},
}


def body(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(DESIGN_EXAMPLE)
    result.update(changes)
    return result


def step(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "delay": {"after": "1h"},
        "messenger": {"text": "Hi"},
        "email": {"subject": "Hi", "html": "<p>Hi</p>"},
        "fallback": "email",
    }
    result.update(changes)
    return result


def errors_of(payload: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        validate_campaign(payload)
    return [(error.field, error.message) for error in caught.value.errors]


def fields_of(payload: dict[str, Any]) -> list[str]:
    return [field for field, _ in errors_of(payload)]


# --- valid bodies ---------------------------------------------------------------------------------


def test_design_example_validates_as_is() -> None:
    spec = validate_campaign(DESIGN_EXAMPLE)
    assert spec.name == "Khuyến mãi tháng 12"
    assert spec.audience.tags_none == ["staff"]
    assert spec.steps[0].delay.length == timedelta(0)
    assert not spec.steps[0].delay.window_relative
    assert spec.steps[1].delay.window_relative
    assert spec.steps[1].delay.length == timedelta(hours=1)
    assert spec.schedule == "now"
    assert spec.throttle is not None and spec.throttle.per_second == 50


def test_minimal_body_takes_defaults() -> None:
    spec = validate_campaign(
        {"name": "n", "page_id": "1", "purpose": "transactional", "steps": [step()]}
    )
    assert spec.topic is None
    assert spec.audience.email_status == ["subscribed"]
    assert spec.audience.messenger == "any"
    assert spec.trigger is None and spec.send_window is None and spec.frequency_cap is None


@pytest.mark.parametrize(
    ("trigger", "kind"),
    [
        ({"on": "captured", "form_id": "f1"}, CapturedTrigger),
        ({"on": "tag_added", "tag": "vip"}, TagAddedTrigger),
        ({"on": "first_message", "page_id": "104"}, FirstMessageTrigger),
    ],
)
def test_triggers(trigger: dict[str, str], kind: type) -> None:
    assert isinstance(validate_campaign(body(trigger=trigger)).trigger, kind)


def test_schedule_at_and_cron() -> None:
    at = validate_campaign(body(schedule={"at": "2026-12-01T09:00:00+07:00"})).schedule
    assert isinstance(at, ScheduleAt) and at.at.utcoffset() == timedelta(hours=7)
    cron = validate_campaign(body(schedule={"cron": "0 9 * * 1"})).schedule
    assert isinstance(cron, ScheduleCron) and cron.timezone == "Asia/Ho_Chi_Minh"
    berlin = validate_campaign(
        body(schedule={"cron": "*/15 8-20 1,15 jan-jun MON-FRI", "timezone": "Europe/Berlin"})
    ).schedule
    assert isinstance(berlin, ScheduleCron) and berlin.timezone == "Europe/Berlin"


def test_send_window_across_midnight_and_in_zone() -> None:
    spec = validate_campaign(body(send_window={"start": "21:00", "end": "06:00"}))
    assert spec.send_window is not None
    window = spec.send_window.in_zone("Europe/Berlin")
    assert str(window.zone) == "Europe/Berlin"


@pytest.mark.parametrize("purpose", ["event_update", "post_purchase_update", "account_update"])
def test_2020_purposes_are_accepted_here(purpose: str) -> None:
    assert validate_campaign(body(purpose=purpose)).purpose == purpose


def test_email_only_step_with_email_fallback() -> None:
    spec = validate_campaign(body(steps=[step(messenger=None)]))
    assert spec.steps[0].messenger is None


def test_window_relative_step_one_is_allowed() -> None:
    payload = body(steps=[step(delay={"before_window_closes": "23h"})])
    assert validate_campaign(payload).steps[0].delay.window_relative


def test_messenger_quick_replies_and_buttons() -> None:
    messenger = {
        "text": "Chọn",
        "quick_replies": [{"content_type": "text", "title": "Có", "payload": "YES"}],
        "buttons": [{"type": "web_url", "title": "Xem", "url": "https://example.com/a"}],
    }
    spec = validate_campaign(body(steps=[step(messenger=messenger)]))
    assert spec.steps[0].messenger is not None
    assert spec.steps[0].messenger.buttons[0]["title"] == "Xem"


# --- shape errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"name": ""}, "name"),
        ({"purpose": "human_reply"}, "purpose"),
        ({"audience": {"messenger": "sometimes"}}, "audience.messenger"),
        ({"audience": {"email_status": ["maybe"]}}, "audience.email_status[0]"),
        ({"audience": {"tags": []}}, "audience.tags"),
        ({"trigger": {"on": "captured"}}, "trigger.form_id"),
        ({"trigger": {"on": "tag_added", "tag": "x", "extra": 1}}, "trigger.extra"),
        ({"trigger": {"on": "clicked"}}, "trigger"),
        ({"steps": []}, "steps"),
        ({"steps": [step()] * 21}, "steps"),
        ({"schedule": "later"}, "schedule"),
        ({"schedule": {"every": "1d"}}, "schedule"),
        ({"schedule": {"at": "2026-12-01T09:00:00"}}, "schedule.at"),
        ({"schedule": {"cron": "0 9 * *"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 9 * * 1", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"schedule": {"cron": "0 9 * * 1", "tz": "UTC"}}, "schedule.tz"),
        ({"send_window": {"start": "08:00", "end": "08:00"}}, "send_window"),
        ({"send_window": {"start": "8:00", "end": "21:00"}}, "send_window"),
        ({"send_window": {"start": "08:00"}}, "send_window.end"),
        ({"frequency_cap": 0}, "frequency_cap"),
        ({"throttle": {"per_second": 0}}, "throttle.per_second"),
        ({"throttle": {"per_second": 301}}, "throttle.per_second"),
    ],
)
def test_shape_errors(changes: dict[str, Any], field: str) -> None:
    assert field in fields_of(body(**changes))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"delay": {}}, "steps[0].delay"),
        ({"delay": {"after": "1h", "before_window_closes": "1h"}}, "steps[0].delay"),
        ({"delay": {"after": "1.5h"}}, "steps[0].delay.after"),
        ({"delay": {"after": "1h", "later": "1h"}}, "steps[0].delay.later"),
        ({"delay": {"before_window_closes": "1w"}}, "steps[0].delay.before_window_closes"),
        ({"fallback": "sms"}, "steps[0].fallback"),
        ({"max_wait": "soon"}, "steps[0].max_wait"),
        ({"messenger": {"text": ""}}, "steps[0].messenger.text"),
        ({"messenger": {"text": "x", "image": "y"}}, "steps[0].messenger.image"),
        ({"email": {"subject": "s"}}, "steps[0].email.html"),
    ],
)
def test_step_shape_errors(changes: dict[str, Any], field: str) -> None:
    payload = body(steps=[step(), step(**changes)])
    assert field.replace("[0]", "[1]") in fields_of(payload)


def test_shape_errors_are_reported_together() -> None:
    payload = body(name="", frequency_cap=0, steps=[step(fallback="sms")])
    assert set(fields_of(payload)) == {"name", "frequency_cap", "steps[0].fallback"}


def test_unknown_field_message() -> None:
    assert errors_of(body(colour="red")) == [("colour", "unknown field")]


# --- cross-field rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"messenger": None, "email": None}, "steps[0]", "messenger or email"),
        ({"email": None, "fallback": "email"}, "steps[0].email", "needs email content"),
        ({"messenger": None, "fallback": "wait_for_window"}, "steps[0].fallback", "never sends"),
        ({"messenger": None, "fallback": "skip"}, "steps[0].fallback", "never sends"),
        ({"max_wait": "3d"}, "steps[0].max_wait", "only to fallback"),
        ({"fallback": "wait_for_window", "max_wait": "0s"}, "steps[0].max_wait", "longer than 0"),
        (
            {"delay": {"before_window_closes": "24h"}},
            "steps[0].delay.before_window_closes",
            "shorter than 24h",
        ),
        (
            {"delay": {"before_window_closes": "1d"}},
            "steps[0].delay.before_window_closes",
            "shorter than 24h",
        ),
        (
            {"delay": {"before_window_closes": "0m"}},
            "steps[0].delay.before_window_closes",
            "longer than 0",
        ),
        (
            {"delay": {"before_window_closes": "1h"}, "messenger": None},
            "steps[0].delay.before_window_closes",
            "needs messenger content",
        ),
    ],
)
def test_cross_field_errors(changes: dict[str, Any], field: str, words: str) -> None:
    found = errors_of(body(steps=[step(**changes)]))
    assert any(f == field and words in message for f, message in found), found


def test_margin_just_under_a_day_is_allowed() -> None:
    payload = body(steps=[step(delay={"before_window_closes": "1439m"})])
    assert validate_campaign(payload).steps[0].delay.length == timedelta(minutes=1439)


def test_max_wait_with_wait_for_window_is_allowed() -> None:
    payload = body(steps=[step(fallback="wait_for_window", max_wait="2d")])
    assert validate_campaign(payload).steps[0].max_wait == "2d"


def test_all_step_errors_at_once_name_their_step() -> None:
    payload = body(
        steps=[
            step(),
            step(email=None),
            step(delay={"before_window_closes": "25h"}, messenger={"text": "{{ secret }}"}),
        ]
    )
    assert fields_of(payload) == [
        "steps[1].email",
        "steps[2].delay.before_window_closes",
        "steps[2].messenger.text",
    ]


# --- templates and Meta limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"messenger": {"text": "{{ contact.name "}}, "steps[0].messenger.text"),
        ({"messenger": {"text": "{{ password }}"}}, "steps[0].messenger.text"),
        ({"email": {"subject": "{% if %}", "html": "<p/>"}}, "steps[0].email.subject"),
        ({"email": {"subject": "s", "html": "{{ nope }}"}}, "steps[0].email.html"),
        ({"email": {"subject": "s", "html": "<p/>", "text": "{{"}}, "steps[0].email.text"),
        (
            {"email": {"subject": "s", "html": "<p/>", "buttons": {"buy": {"vi": "Mua"}}}},
            "steps[0].email.buttons.buy",
        ),
        (
            {"email": {"subject": "s", "html": "<p/>", "buttons": {"support": {"fr": "Aide"}}}},
            "steps[0].email.buttons.support.fr",
        ),
        (
            {"email": {"subject": "s", "html": "<p/>", "buttons": {"support": {"vi": " "}}}},
            "steps[0].email.buttons.support.vi",
        ),
    ],
)
def test_template_errors(changes: dict[str, Any], field: str) -> None:
    assert field in fields_of(body(steps=[step(**changes)]))


def test_every_template_error_is_reported() -> None:
    payload = body(
        steps=[
            step(
                messenger={"text": "{{ a }}"},
                email={"subject": "{{ b }}", "html": "{{ c }}", "text": "{{ d }}"},
            )
        ]
    )
    assert fields_of(payload) == [
        "steps[0].messenger.text",
        "steps[0].email.subject",
        "steps[0].email.html",
        "steps[0].email.text",
    ]


def reply(title: str) -> dict[str, str]:
    return {"content_type": "text", "title": title, "payload": "P"}


def url_button(title: str) -> dict[str, str]:
    return {"type": "web_url", "title": title, "url": "https://example.com"}


@pytest.mark.parametrize(
    ("messenger", "field"),
    [
        ({"text": "x", "quick_replies": [reply("a")] * 14}, "steps[0].messenger.quick_replies"),
        (
            {"text": "x", "quick_replies": [reply("a"), reply("x" * 21)]},
            "steps[0].messenger.quick_replies[1].title",
        ),
        (
            {"text": "x", "quick_replies": [{"content_type": "location"}]},
            "steps[0].messenger.quick_replies[0].content_type",
        ),
        ({"text": "x", "buttons": [url_button("a")] * 4}, "steps[0].messenger.buttons"),
        (
            {"text": "x", "buttons": [url_button("a"), url_button("b" * 21)]},
            "steps[0].messenger.buttons[1].title",
        ),
        (
            {"text": "x", "buttons": [{"type": "web_url", "title": "a", "url": "ftp://x"}]},
            "steps[0].messenger.buttons[0].url",
        ),
    ],
)
def test_messenger_static_limits(messenger: dict[str, Any], field: str) -> None:
    assert fields_of(body(steps=[step(messenger=messenger)])) == [field]


# --- durations and cron ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("1h", timedelta(hours=1)),
        ("3d", timedelta(days=3)),
        ("007m", timedelta(minutes=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1H", "1.5h", "-1h", " 1h", "1h ", "1h30m", "1w", "١h", "999999999999d"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_cron_fields() -> None:
    cron = parse_cron("*/20 9-17/4 1,15 jan,Jun-aug 1-5")
    assert cron.minutes == frozenset({0, 20, 40})
    assert cron.hours == frozenset({9, 13, 17})
    assert cron.days_of_month == frozenset({1, 15})
    assert cron.months == frozenset({1, 6, 7, 8})
    assert cron.days_of_week == frozenset({1, 2, 3, 4, 5})


def test_parse_cron_sunday_is_0_and_7_and_a_slash_from_a_value() -> None:
    cron = parse_cron("5/20 0 * * 7,SAT")
    assert cron.minutes == frozenset({5, 25, 45})
    assert cron.days_of_week == frozenset({0, 6})
    assert parse_cron("0 0 * * *").days_of_week == frozenset(range(7))


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 9 * *", "5 fields"),
        ("0 9 * * * *", "5 fields"),
        ("60 9 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour"),
        ("0 9 0 * *", "day of month"),
        ("0 9 * 13 *", "month"),
        ("0 9 * * 8", "day of week"),
        ("0 9 * * 5-1", "runs backwards"),
        ("*/0 9 * * *", "at least 1"),
        ("*/x 9 * * *", "step 'x' is not a number"),
        ("0 9 * * mon-", "day of week: value '' is not a number"),
        ("@daily 9 * * *", "minute"),
        ("0 9 L * *", "day of month"),
        ("0 9 * * MON#1", "day of week"),
        ("0 9 * foo *", "month"),
    ],
)
def test_parse_cron_refuses(expression: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_cron(expression)
