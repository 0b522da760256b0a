"""Every row of reference section 6 (and the opt-in errors of §3.2), as literal Graph errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from channels.messenger.errors import (
    ErrorClass,
    MalformedRequest,
    MessengerError,
    OptInLimited,
    PagePaused,
    PermissionDenied,
    RateLimited,
    RecipientUnavailable,
    TagLimitReached,
    TagRejected,
    TemporaryFailure,
    ThreadOwnedByAnotherApp,
    TokenInvalid,
    WindowClosed,
    classify,
    error_from_response,
    exception_type,
    retry_after_from_headers,
)

W = ErrorClass.WINDOW_CLOSED
U = ErrorClass.RECIPIENT_UNAVAILABLE
R = ErrorClass.RATE_LIMITED
T = ErrorClass.TEMPORARY
P = ErrorClass.PAGE_PAUSED
K = ErrorClass.TOKEN_INVALID


def graph(code: int, subcode: int | None = None, message: str = "(#x) error") -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AxIIVeNpuf3y2jeXdufRcEX",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


# (row of the reference table, code, subcode, message, expected class)
TABLE: list[tuple[str, int, int | None, str, ErrorClass]] = [
    ("outside window", 10, 2018278, "(#10) This message is sent outside of allowed window.", W),
    ("outside window IG", 10, 2534022, "This message is sent outside of allowed window.", W),
    ("outside window news", 10, 2018065, "You need News Messaging permission", W),
    (
        "dead tag, observed subcode",
        100,
        1893061,
        "(#100) Invalid parameter",
        ErrorClass.TAG_REJECTED,
    ),
    ("dead tag, older text", 100, None, "(#100) Invalid tag.", ErrorClass.TAG_REJECTED),
    ("dead tag, bare 100", 100, None, "(#100) Invalid parameter", ErrorClass.MALFORMED_REQUEST),
    ("user block", 551, None, "User Block Error: This person isn't receiving messages", U),
    ("unavailable 551", 551, 1545041, "This person isn't available right now.", U),
    ("unavailable 200", 200, 1545041, "Message Not Sent: This person isn't available", U),
    ("can't receive", 10, 2018108, "They can't receive your messages right now.", U),
    ("blocked business / service", 2, None, "An unexpected error has occurred.", T),
    ("app rate limit", 4, None, "Application request limit reached", R),
    ("user rate limit", 17, None, "User request limit reached", R),
    ("page rate limit", 32, None, "Page request limit reached", R),
    ("api rate limit", 613, None, "Calls to this api have exceeded the rate limit.", R),
    ("api rate limit sub", 613, 2534040, "Calls to this api have exceeded the rate limit.", R),
    ("pages BUC limit", 80001, None, "There have been too many calls to this Page account.", R),
    ("application limit", 341, None, "Application limit reached", R),
    (
        "tag spam warning",
        613,
        2018338,
        "Warning! You are engaging in behavior...",
        ErrorClass.TAG_LIMIT_REACHED,
    ),
    ("api unknown", 1, None, "An unknown error occurred.", T),
    ("invalid json reply", 1, 1357046, "Received invalid JSON reply.", T),
    ("temporary send failure", 1200, None, "Temporary send message failure.", T),
    ("token invalid", 190, None, "Invalid OAuth access token.", P),
    ("token password change", 190, 460, "Error validating access token", P),
    ("token expired", 190, 463, "Session has expired", P),
    ("app not installed", 190, 458, "The user has not authorized application", P),
    (
        "permission 10",
        10,
        None,
        "(#10) Application does not have permission",
        ErrorClass.PERMISSION_DENIED,
    ),
    ("permission 200", 200, None, "(#200) Permissions error", ErrorClass.PERMISSION_DENIED),
    (
        "permission 3",
        3,
        None,
        "(#3) Application does not have the capability",
        ErrorClass.PERMISSION_DENIED,
    ),
    ("permission 2xx", 299, None, "(#299) Permission", ErrorClass.PERMISSION_DENIED),
    ("phone number not reviewed", 200, 2018027, "Cannot message users who are not admins", P),
    ("messaging not reviewed", 200, 2018028, "Cannot message users who are not admins", P),
    ("page restricted", 10, 1893063, "You are temporarily restricted from sending messages.", P),
    ("policy block", 368, None, "The action attempted has been deemed abusive", P),
    ("policy block with subcode", 368, 1390008, "You can't use this feature right now", P),
    (
        "thread owned",
        2018300,
        None,
        "another app is controlling this thread now",
        ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,
    ),
    (
        "thread owned as subcode",
        10,
        2018300,
        "another app is controlling this thread",
        ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,
    ),
    (
        "q&a flow",
        2018321,
        None,
        "The chat is currently controlled by Messenger",
        ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,
    ),
    (
        "q&a flow as subcode",
        10,
        2018321,
        "The chat is currently controlled by Messenger",
        ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,
    ),
    ("no matching user", 100, 2018001, "No matching user found", U),
    ("object does not exist", 100, 33, "Unsupported get request. Object with ID does not exist", U),
    (
        "private reply comment invalid (§8)",
        100,
        2534025,
        "The comment is invalid for a private reply",
        U,
    ),
    ("rn token invalid", 100, None, "(#100) notification_messages_token is invalid", K),
    ("rn token expired", 100, None, "notification_messages_token has expired", K),
    ("otn token invalid (by analogy)", 100, None, "Invalid one_time_notif_token", K),
    (
        "rn stopped by user",
        10,
        1893015,
        "(#10) This user has currently stopped notification messages",
        K,
    ),
    (
        "rn min delay (§3.2)",
        4,
        2018354,
        "There has to be a minimum delay",
        ErrorClass.OPT_IN_LIMITED,
    ),
    (
        "opt-in topic duplicate (§3.2)",
        613,
        1893016,
        "You may not send multiple opt-in requests",
        ErrorClass.OPT_IN_LIMITED,
    ),
    (
        "opt-in too many (§3.2)",
        9,
        2018352,
        "User is performing too many actions",
        ErrorClass.OPT_IN_LIMITED,
    ),
    (
        "opt-in barred (§3.2)",
        10,
        1404170,
        "Application does not have permission for this action",
        ErrorClass.OPT_IN_LIMITED,
    ),
    (
        "other 100 subcode is ours",
        100,
        2018008,
        "Failed to fetch the file from the url",
        ErrorClass.MALFORMED_REQUEST,
    ),
    (
        "marketing message API: not handled",
        2300052,
        None,
        "This person is not available right now",
        ErrorClass.UNKNOWN,
    ),
    ("unknown code", 12345, None, "Something new", ErrorClass.UNKNOWN),
]


@pytest.mark.parametrize(
    ("code", "subcode", "message", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_reference_table_row(
    code: int, subcode: int | None, message: str, expected: ErrorClass
) -> None:
    body = graph(code, subcode, message)
    # Rate limits usually come back as HTTP 400, so the status must not matter for known codes.
    for status in (400, 403, 500):
        assert classify(status, body) is (
            T if status >= 500 and expected is ErrorClass.UNKNOWN else expected
        )
    assert classify(None, body["error"]) is expected
    error = error_from_response(400, body)
    assert type(error) is exception_type(expected)
    assert error.error_class is expected
    assert (error.code, error.subcode) == (code, subcode)
    assert error.message == message
    assert error.fbtrace_id == "AxIIVeNpuf3y2jeXdufRcEX"
    assert error.http_status == 400
    assert error.error_type == "OAuthException"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, None, T),
        (503, "<html>Service Unavailable</html>", T),
        (500, {"error": {"message": "boom"}}, T),
        (429, None, R),
        (400, None, ErrorClass.UNKNOWN),
        (400, {"error": "not an object"}, ErrorClass.UNKNOWN),
        (400, {"error": {"code": 999999, "is_transient": True}}, T),
        (400, {"error": {"code": 999999, "is_transient": False}}, ErrorClass.UNKNOWN),
        (400, {"error": {"code": "613"}}, R),
        (400, {"error": {"code": True}}, ErrorClass.UNKNOWN),
        (400, {"error": {"code": 10, "error_subcode": "2018278"}}, W),
        (None, None, ErrorClass.UNKNOWN),
    ],
)
def test_fallbacks_without_a_known_code(
    status: int | None, body: Any, expected: ErrorClass
) -> None:
    assert classify(status, body) is expected


def test_known_code_wins_over_transient_hint_and_5xx() -> None:
    body = {"error": {"code": 10, "error_subcode": 2018278, "is_transient": True}}
    assert classify(500, body) is W


def test_class_properties_match_design_section_5() -> None:
    assert {c for c in ErrorClass if c.retryable} == {R, T}
    assert {c for c in ErrorClass if c.reroutes} == {W, U}
    assert {c for c in ErrorClass if c.pauses_page} == {P}
    assert {c for c in ErrorClass if c.removes_token} == {K}


def test_exception_leaves() -> None:
    expected = {
        W: WindowClosed,
        U: RecipientUnavailable,
        R: RateLimited,
        T: TemporaryFailure,
        P: PagePaused,
        K: TokenInvalid,
        ErrorClass.THREAD_OWNED_BY_ANOTHER_APP: ThreadOwnedByAnotherApp,
        ErrorClass.TAG_REJECTED: TagRejected,
        ErrorClass.TAG_LIMIT_REACHED: TagLimitReached,
        ErrorClass.OPT_IN_LIMITED: OptInLimited,
        ErrorClass.PERMISSION_DENIED: PermissionDenied,
        ErrorClass.MALFORMED_REQUEST: MalformedRequest,
        ErrorClass.UNKNOWN: MessengerError,
    }
    for error_class, leaf in expected.items():
        assert exception_type(error_class) is leaf
        assert leaf.error_class is error_class
        assert issubclass(leaf, MessengerError)


def test_temporary_errors_may_have_been_delivered_others_not() -> None:
    assert error_from_response(500, None).maybe_delivered
    assert error_from_response(400, graph(1200)).maybe_delivered
    assert not error_from_response(400, graph(613)).maybe_delivered
    assert not error_from_response(400, graph(10, 2018278)).maybe_delivered


BUC = json.dumps(
    {
        "1234": [
            {"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 2},
            {"type": "pages", "call_count": 80, "estimated_time_to_regain_access": 0},
        ]
    }
)


def test_retry_after_from_business_use_case_header() -> None:
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": BUC}) == 120.0
    assert retry_after_from_headers({"x-app-usage": '{"call_count": 100}'}) is None
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": "not json"}) is None
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": '{"1": "x"}'}) is None
    assert (
        retry_after_from_headers(
            {"X-Business-Use-Case-Usage": '{"1": [{"estimated_time_to_regain_access": true}]}'}
        )
        is None
    )
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": "[1]"}) is None


def test_retry_after_attached_only_to_rate_limits() -> None:
    headers = {"X-Business-Use-Case-Usage": BUC}
    assert error_from_response(400, graph(80001), headers).retry_after == 120.0
    assert error_from_response(400, graph(10, 2018278), headers).retry_after is None
    assert error_from_response(400, graph(613)).retry_after is None


def test_as_dict_is_the_parsed_error_only() -> None:
    error = error_from_response(400, graph(10, 2018278, "(#10) outside window"))
    assert error.as_dict() == {
        "class": "window_closed",
        "code": 10,
        "subcode": 2018278,
        "message": "(#10) outside window",
        "fbtrace_id": "AxIIVeNpuf3y2jeXdufRcEX",
        "http_status": 400,
        "maybe_delivered": False,
    }
    assert str(error) == "(#10) outside window (#10/2018278)"
    assert str(error_from_response(503, None)) == "Graph API answered HTTP 503"
