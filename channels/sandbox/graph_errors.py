"""Graph API error objects, shaped like Meta's (reference §6, [S5][S6]).

The emulator answers every refusal with `{"error": {...}}` and HTTP 400 unless told otherwise:
Meta returns rate-limit and most other errors as 400, not 429 (reference §6, [T*]).
"""

from __future__ import annotations

from typing import Any

# Default texts per (code, subcode), from the reference §6 table and §3.2 error list.
# A key with subcode None is the fallback for the bare code.
KNOWN_ERRORS: dict[tuple[int, int | None], str] = {
    (1, None): "An unknown error occurred",
    (2, None): "An unexpected error has occurred. Please retry your request later.",
    (3, None): "Application does not have the capability to make this API call.",
    (4, None): "Application request limit reached",
    (4, 2018354): "The minimum delay between notifications has not passed yet.",
    (9, 2018352): "Too many opt-in requests.",
    (10, None): "Application does not have permission for this action",
    (10, 2018278): (
        "This message is sent outside of allowed window. Learn more about the new policy here: "
        "https://developers.facebook.com/docs/messenger-platform/policy-overview"
    ),
    (10, 2534022): "This message is sent outside of allowed window.",
    (
        10,
        2018065,
    ): "This message is sent outside of allowed window. News messaging permission needed.",
    (10, 2018108): "They can't receive your messages right now.",
    (10, 1893063): "You are temporarily restricted from sending messages.",
    (10, 1893015): "The person stopped these messages.",
    (10, 1404170): "This Page is temporarily barred from sending opt-in requests.",
    (17, None): "User request limit reached",
    (32, None): "Page request limit reached",
    (100, None): "Invalid parameter",
    (100, 33): "Unsupported post request. Object does not exist, cannot be loaded due to missing "
    "permissions, or does not support this operation.",
    (100, 1893061): "Invalid parameter",
    (100, 2018001): "No matching user found",
    (100, 2534025): "The comment is invalid for a private reply",
    (190, None): "Invalid OAuth access token - Cannot parse access token",
    (200, None): "Permissions error",
    (200, 1545041): "This person isn't available right now.",
    (200, 2018027): "Cannot message users who are not admins, developers or testers of the app "
    "until pages_messaging permission is reviewed and the app is live.",
    (200, 2018028): "Cannot message this user: pages_messaging permission is not approved.",
    (368, None): "The action attempted has been deemed abusive or is otherwise disallowed",
    (551, None): "This person isn't receiving messages from you right now.",
    (551, 1545041): "This person isn't available right now.",
    (613, None): "Calls to this api have exceeded the rate limit.",
    (613, 2534040): "Calls to this api have exceeded the rate limit.",
    (613, 2018338): "You are sending too many messages with a tag to this person. "
    "This may be seen as bothersome or abusive.",
    (613, 1893016): "Duplicate opt-in topic.",
    (1200, None): "Temporary send message failure. Please try again later",
    (2018300, None): "Another app is controlling this thread now.",
    (2018321, None): "Messenger Q&A flow is in control of this thread.",
    (80001, None): "There have been too many calls to this Page account. Wait a bit and try again.",
}

# Codes Graph itself calls temporary (reference §6, [S6]); shown as `is_transient: true`.
TRANSIENT_CODES: frozenset[int] = frozenset({1, 2, 4, 17, 32, 341, 613, 1200, 80001})


def default_message(code: int, subcode: int | None) -> str:
    """Meta's wording for (code, subcode), prefixed `(#code)` as Graph does (190 has no prefix)."""
    text = KNOWN_ERRORS.get((code, subcode)) or KNOWN_ERRORS.get((code, None)) or "Unknown error"
    return text if code == 190 else f"(#{code}) {text}"


class GraphError(Exception):
    """One Graph API refusal; `body()` is what goes on the wire."""

    def __init__(
        self,
        code: int,
        subcode: int | None = None,
        message: str | None = None,
        *,
        error_type: str = "OAuthException",
        http_status: int = 400,
        is_transient: bool | None = None,
        error_user_title: str | None = None,
        error_user_msg: str | None = None,
    ) -> None:
        self.code = code
        self.subcode = subcode
        self.message = message if message is not None else default_message(code, subcode)
        self.error_type = error_type
        self.http_status = http_status
        self.is_transient = is_transient if is_transient is not None else code in TRANSIENT_CODES
        self.error_user_title = error_user_title
        self.error_user_msg = error_user_msg
        super().__init__(self.message)

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.error_user_title is not None:
            error["error_user_title"] = self.error_user_title
        if self.error_user_msg is not None:
            error["error_user_msg"] = self.error_user_msg
        error["is_transient"] = self.is_transient
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}


def invalid_parameter(detail: str, subcode: int | None = None) -> GraphError:
    """A malformed request: code 100 (reference §6)."""
    return GraphError(100, subcode, f"(#100) {detail}")


def outside_window() -> GraphError:
    return GraphError(10, 2018278)


def no_matching_user() -> GraphError:
    return GraphError(100, 2018001)


def invalid_token(
    detail: str = "Invalid OAuth access token - Cannot parse access token",
) -> GraphError:
    return GraphError(190, None, detail)


def rate_limited() -> GraphError:
    return GraphError(613)


def unknown_object(node: str) -> GraphError:
    # Graph's wording for a node id nobody knows (reference §6 lists 100/33 under bad recipients).
    return GraphError(
        100,
        33,
        f"(#100) Unsupported post request. Object with ID '{node}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
    )
