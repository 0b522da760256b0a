"""Messenger Platform adapter: pure payload builders, error classification, the Send API call.

- `payloads`: build and validate Send API bodies (`build_send_request`, template builders).
- `errors`: the `MessengerError` tree and the pure `classify(http_status, error_json)`.
- `retry`: the backoff schedule (`RetryPolicy.delay_after`) and `call_with_retry`.
- `ratelimit`: the `RateLimiter` protocol and the in-process `SlidingWindowLimiter`.
- `client`: `MessengerClient`, the only module here that does I/O.
"""

from channels.messenger.client import (
    MessengerClient,
    SendReceipt,
    SubscribedApp,
    build_http_client,
    build_http_clients,
)
from channels.messenger.errors import (
    ErrorClass,
    MessengerError,
    PayloadInvalid,
    classify,
    error_from_response,
)
from channels.messenger.payloads import (
    MessagingType,
    NotificationType,
    Recipient,
    RecipientKind,
    build_send_request,
)
from channels.messenger.ratelimit import RateLimiter, SlidingWindowLimiter
from channels.messenger.retry import RetryPolicy, call_with_retry

__all__ = [
    "ErrorClass",
    "MessagingType",
    "MessengerClient",
    "MessengerError",
    "NotificationType",
    "PayloadInvalid",
    "RateLimiter",
    "Recipient",
    "RecipientKind",
    "RetryPolicy",
    "SendReceipt",
    "SlidingWindowLimiter",
    "SubscribedApp",
    "build_http_client",
    "build_http_clients",
    "build_send_request",
    "call_with_retry",
    "classify",
    "error_from_response",
]
