"""Messenger error tree and the pure classification of Graph API errors.

`classify(http_status, error_json)` decides what a failed Send API call means, keyed by
(code, subcode) first, then a few subcodes Meta documents without a code, then code alone, then the
HTTP status (DESIGN section 5, reference section 6). `error_from_response` turns the same inputs into
the typed exception the client raises. Nothing here does I/O.

The exception never carries the access token, the request URL or the request body: only the parsed
Graph error object (code, subcode, message, fbtrace_id) and the HTTP status (DESIGN section 11).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar


class ErrorClass(StrEnum):
    """What a failure means for the caller; one value per exception leaf."""

    WINDOW_CLOSED = "window_closed"
    RECIPIENT_UNAVAILABLE = "recipient_unavailable"
    RATE_LIMITED = "rate_limited"
    TEMPORARY = "temporary"
    PAGE_PAUSED = "page_paused"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (a class name, not a secret)
    THREAD_OWNED_BY_ANOTHER_APP = "thread_owned_by_another_app"
    TAG_REJECTED = "tag_rejected"
    TAG_LIMIT_REACHED = "tag_limit_reached"
    OPT_IN_LIMITED = "opt_in_limited"
    PERMISSION_DENIED = "permission_denied"
    MALFORMED_REQUEST = "malformed_request"
    UNKNOWN = "unknown"

    @property
    def retryable(self) -> bool:
        """Retried on Messenger with backoff (DESIGN section 5)."""
        return self in _RETRYABLE

    @property
    def reroutes(self) -> bool:
        """Re-route the same delivery to its fallback at once; never retried on Messenger."""
        return self in _REROUTES

    @property
    def pauses_page(self) -> bool:
        """Stop every send for the Page until an operator acts."""
        return self is ErrorClass.PAGE_PAUSED

    @property
    def removes_token(self) -> bool:
        """The opt-in token used as recipient is dead; delete it."""
        return self is ErrorClass.TOKEN_INVALID


_RETRYABLE = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.TEMPORARY})
_REROUTES = frozenset({ErrorClass.WINDOW_CLOSED, ErrorClass.RECIPIENT_UNAVAILABLE})


# --- the tree ---------------------------------------------------------------------------------


class MessengerError(Exception):
    """Root of everything the Messenger adapter raises.

    `maybe_delivered` is True when Meta may have accepted the message although we saw a failure
    (a timeout after the request was written, a connection dropped mid-response, a temporary error
    that Meta documents as sometimes sent anyway): resending may duplicate, so the retry wrapper asks
    the caller's `already_sent` hook first. `retry_after` is a server hint in seconds, if any.
    """

    error_class: ClassVar[ErrorClass] = ErrorClass.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        error_type: str | None = None,
        maybe_delivered: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.error_type = error_type
        self.maybe_delivered = maybe_delivered
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.error_class.retryable

    def as_dict(self) -> dict[str, Any]:
        """The parsed error, safe to store on a delivery row (no URL, no token, no body)."""
        return {
            "class": self.error_class.value,
            "code": self.code,
            "subcode": self.subcode,
            "message": self.message,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
            "maybe_delivered": self.maybe_delivered,
        }

    def __str__(self) -> str:
        where = ""
        if self.code is not None:
            where = (
                f" (#{self.code}" + (f"/{self.subcode}" if self.subcode is not None else "") + ")"
            )
        return f"{self.message}{where}"


class WindowClosed(MessengerError):
    error_class = ErrorClass.WINDOW_CLOSED


class RecipientUnavailable(MessengerError):
    error_class = ErrorClass.RECIPIENT_UNAVAILABLE


class RateLimited(MessengerError):
    error_class = ErrorClass.RATE_LIMITED


class PageCooling(RateLimited):
    """Not sent: the Page began cooling down (a rate-limit answer to another call) while this
    call waited for its turn (`MessengerClient.cooling_for`). Nothing reached Meta."""


class TemporaryFailure(MessengerError):
    error_class = ErrorClass.TEMPORARY


class SendTimedOut(TemporaryFailure):
    """No answer in time; `maybe_delivered` says whether the request had been written."""


class ConnectionFailed(TemporaryFailure):
    """The connection failed; `maybe_delivered` is False only when nothing was sent."""


class PagePaused(MessengerError):
    error_class = ErrorClass.PAGE_PAUSED


class TokenInvalid(MessengerError):
    error_class = ErrorClass.TOKEN_INVALID


class ThreadOwnedByAnotherApp(MessengerError):
    error_class = ErrorClass.THREAD_OWNED_BY_ANOTHER_APP


class TagRejected(MessengerError):
    error_class = ErrorClass.TAG_REJECTED


class TagLimitReached(MessengerError):
    error_class = ErrorClass.TAG_LIMIT_REACHED


class OptInLimited(MessengerError):
    error_class = ErrorClass.OPT_IN_LIMITED


class PermissionDenied(MessengerError):
    error_class = ErrorClass.PERMISSION_DENIED


class MalformedRequest(MessengerError):
    """Our own bug: Meta refused the request's shape (bare #100). Never retried."""

    error_class = ErrorClass.MALFORMED_REQUEST


class PayloadInvalid(MalformedRequest, ValueError):
    """A payload breaks one of Meta's documented limits; caught before any request is made.

    `field` is the path inside the Send API body, e.g. `message.quick_replies[3].title`. The
    message names the limit, never the offending value (it may hold a token or personal data).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnexpectedResponse(MessengerError):
    """A 2xx answer we cannot read; Meta may well have sent the message."""


_LEAVES: dict[ErrorClass, type[MessengerError]] = {
    ErrorClass.WINDOW_CLOSED: WindowClosed,
    ErrorClass.RECIPIENT_UNAVAILABLE: RecipientUnavailable,
    ErrorClass.RATE_LIMITED: RateLimited,
    ErrorClass.TEMPORARY: TemporaryFailure,
    ErrorClass.PAGE_PAUSED: PagePaused,
    ErrorClass.TOKEN_INVALID: TokenInvalid,
    ErrorClass.THREAD_OWNED_BY_ANOTHER_APP: ThreadOwnedByAnotherApp,
    ErrorClass.TAG_REJECTED: TagRejected,
    ErrorClass.TAG_LIMIT_REACHED: TagLimitReached,
    ErrorClass.OPT_IN_LIMITED: OptInLimited,
    ErrorClass.PERMISSION_DENIED: PermissionDenied,
    ErrorClass.MALFORMED_REQUEST: MalformedRequest,
    ErrorClass.UNKNOWN: MessengerError,
}


def exception_type(error_class: ErrorClass) -> type[MessengerError]:
    return _LEAVES[error_class]


# --- the table (reference section 6 unless noted; [S#] ids are the reference's sources) ----------

_W = ErrorClass.WINDOW_CLOSED
_U = ErrorClass.RECIPIENT_UNAVAILABLE
_R = ErrorClass.RATE_LIMITED
_T = ErrorClass.TEMPORARY
_P = ErrorClass.PAGE_PAUSED
_K = ErrorClass.TOKEN_INVALID

BY_CODE_AND_SUBCODE: Mapping[tuple[int, int], ErrorClass] = {
    (10, 2018278): _W,  # outside the allowed window, reference §6 [S5]
    (10, 2534022): _W,  # outside window (IG; Messenger per clients), reference §6 [S5]
    (10, 2018065): _W,  # outside window, News Messaging permission needed, reference §6 [S5]
    (551, 1545041): _U,  # "This person isn't available right now", reference §6 [S5]
    (200, 1545041): _U,  # same text under code 200, reference §6 [S5]
    (10, 2018108): _U,  # "They can't receive your messages right now", reference §6 [S5]
    (100, 2018001): _U,  # "No matching user found", reference §6 [S5]
    (100, 33): _U,  # object does not exist / cannot be loaded, reference §6 [S5]
    # The comment is deleted, too old (7 days) or already answered: fall back, reference §8 [S5][S17].
    (100, 2534025): _U,
    (613, 2534040): _R,  # "Calls to this api have exceeded the rate limit", reference §6 [S5]
    # Too many tagged messages to this person: stop tagging them, never retry, reference §6 [S5].
    (613, 2018338): ErrorClass.TAG_LIMIT_REACHED,
    # "You are temporarily restricted from sending messages" (Jun 25, 2026), reference §6 [S5]
    (10, 1893063): _P,
    (200, 2018027): _P,  # app roles only until pages_messaging_phone_number is reviewed, §6 [S5]
    (200, 2018028): _P,  # app roles only until pages_messaging is reviewed, reference §6 [S5]
    # The person pressed "Stop these messages" for the topic, reference §3.2 and §6 [S5]
    (10, 1893015): _K,
    # Retired tags answer #100; subcode 1893061 was observed once (UNCONFIRMED), reference §6 [T1].
    (100, 1893061): ErrorClass.TAG_REJECTED,
    # Opt-in machinery limits (reference §3.2 [S5]). DESIGN §5 would retry 4 and 613 as rate
    # limits, but these mean "not before the cadence/topic allows": retrying cannot help.
    (4, 2018354): ErrorClass.OPT_IN_LIMITED,  # minimum delay between notifications not passed
    (613, 1893016): ErrorClass.OPT_IN_LIMITED,  # duplicate opt-in topic for this person
    (9, 2018352): ErrorClass.OPT_IN_LIMITED,  # too many opt-in requests
    (10, 1404170): ErrorClass.OPT_IN_LIMITED,  # Page temporarily barred from opt-in requests
}

# The error-code page lists these as codes without a subcode (reference §6 [S5]); some clients see
# them as the subcode of #10. Matching the number in either place keeps both readings.
BY_SUBCODE_ALONE: Mapping[int, ErrorClass] = {
    2018300: ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,  # another app controls the thread, §6 [S5]
    2018321: ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,  # Messenger's Q&A flow has control, §6 [S5]
}

BY_CODE: Mapping[int, ErrorClass] = {
    551: _U,  # "User Block Error: This person isn't receiving messages from you", reference §6 [S5]
    1: _T,  # API Unknown, temporary per Graph guidance, reference §6 [S5][S6]
    # "Retry later"; [S5] adds it may mean the person blocked the business (see DESIGN §5 note).
    2: _T,
    1200: _T,  # "Temporary send message failure" (legacy, still handled by clients), §6 [T10]
    4: _R,  # application request limit, reference §6 [S5][S6]
    17: _R,  # user request limit, reference §6 [S6]
    32: _R,  # Page request limit, reference §6 [S6][T*]
    341: _R,  # application limit reached; temporary per Graph guidance, reference §6 [S6]
    613: _R,  # "Calls to this api have exceeded the rate limit", reference §6 [S5]
    80001: _R,  # Pages Business Use Case limit, reference §6 [T*]
    190: _P,  # invalid or expired Page token (any subcode: 458, 460, 463...), reference §6 [S5][S6]
    368: _P,  # temporarily blocked for policy violations, reference §6 [S5][S6]
    10: ErrorClass.PERMISSION_DENIED,  # permission problem, reference §6 [S6]
    200: ErrorClass.PERMISSION_DENIED,  # app not reviewed / permission missing, reference §6 [S5]
    3: ErrorClass.PERMISSION_DENIED,  # capability missing, reference §6 [S6]
    2018300: ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,  # reference §6 [S5]
    2018321: ErrorClass.THREAD_OWNED_BY_ANOTHER_APP,  # reference §6 [S5]
    100: ErrorClass.MALFORMED_REQUEST,  # bare "Invalid parameter": our bug, reference §6 [S5]
}

# Graph groups 200-299 as permission errors, reference §6 [S6].
_PERMISSION_RANGE = range(200, 300)

# A bare #100 whose message names an opt-in token means the token is dead, not that the request
# was malformed (reference §3.2, §6 [S5]); "(#100) Invalid tag." is the older tag refusal [T9].
_TOKEN_WORDS = ("notification_messages_token", "one_time_notif_token")
_TAG_WORDS = ("invalid tag",)


def classify(http_status: int | None, error_json: Any) -> ErrorClass:
    """Classify a failed Graph call from its HTTP status and decoded body (or None).

    `error_json` is the whole body (`{"error": {...}}`) or the inner error object; anything else
    (HTML from a proxy, nothing at all) falls back to the HTTP status.
    """
    fields = _error_fields(error_json)
    code, subcode = fields["code"], fields["subcode"]
    if code is not None and subcode is not None:
        found = BY_CODE_AND_SUBCODE.get((code, subcode))
        if found is not None:
            return found
    if subcode is not None and subcode in BY_SUBCODE_ALONE:
        return BY_SUBCODE_ALONE[subcode]
    if code == 100:
        text = (fields["message"] or "").lower()
        if any(word in text for word in _TOKEN_WORDS):
            return ErrorClass.TOKEN_INVALID
        if any(word in text for word in _TAG_WORDS):
            return ErrorClass.TAG_REJECTED
    if code is not None:
        found = BY_CODE.get(code)
        if found is not None:
            return found
        if code in _PERMISSION_RANGE:
            return ErrorClass.PERMISSION_DENIED
    if http_status is not None and http_status >= 500:
        return ErrorClass.TEMPORARY  # DESIGN §5: HTTP 5xx is temporary
    if http_status == 429:
        return ErrorClass.RATE_LIMITED
    if fields["is_transient"] is True:
        return ErrorClass.TEMPORARY  # Graph's own hint for codes we do not know, reference §6 [S5]
    return ErrorClass.UNKNOWN


def error_from_response(
    http_status: int | None,
    error_json: Any,
    headers: Mapping[str, str] | None = None,
) -> MessengerError:
    """The typed exception for a failed Graph call (pure; the client raises it)."""
    error_class = classify(http_status, error_json)
    fields = _error_fields(error_json)
    message = fields["message"] or f"Graph API answered HTTP {http_status}"
    retry_after = retry_after_from_headers(headers) if headers is not None else None
    return _LEAVES[error_class](
        message,
        code=fields["code"],
        subcode=fields["subcode"],
        fbtrace_id=fields["fbtrace_id"],
        http_status=http_status,
        error_type=fields["type"],
        # Temporary errors may still have sent the message (1/1357046 "all sent successfully, but
        # the endpoint returns an error"): check echoes before resending, reference §6 [S5].
        maybe_delivered=error_class is ErrorClass.TEMPORARY,
        retry_after=retry_after if error_class is ErrorClass.RATE_LIMITED else None,
    )


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds until access returns, from `X-Business-Use-Case-Usage` (minutes in the header).

    Meta asks to honour the usage headers, reference §7 [S6-rate]; other headers say only how close
    we are, so they give no wait.
    """
    raw = _header(headers, "x-business-use-case-usage")
    if raw is None:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes: list[float] = []
    for entries in usage.values() if isinstance(usage, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            value = (
                entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
            )
            if value is not None and _positive_number(value):
                minutes.append(float(value))
    return max(minutes) * 60.0 if minutes else None


def _positive_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value > 0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _error_fields(error_json: Any) -> dict[str, Any]:
    inner: Any = error_json
    if isinstance(error_json, Mapping) and isinstance(error_json.get("error"), Mapping):
        inner = error_json["error"]
    if not isinstance(inner, Mapping):
        inner = {}
    message = inner.get("message")
    trace = inner.get("fbtrace_id")
    kind = inner.get("type")
    return {
        "code": _as_int(inner.get("code")),
        "subcode": _as_int(inner.get("error_subcode")),
        "message": message if isinstance(message, str) else None,
        "fbtrace_id": trace if isinstance(trace, str) else None,
        "type": kind if isinstance(kind, str) else None,
        "is_transient": inner.get("is_transient"),
    }


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
