"""The Send API client: one I/O call per method, typed errors, bounded concurrency.

`MessengerClient` receives its `httpx.AsyncClient` and every setting through the constructor; it
never reads settings or touches a database. The Page access token travels only in the
`Authorization: Bearer` header (reference §2 allows it; DESIGN section 11 forbids it in URLs and
logs); the `httpx` and `httpcore` loggers are held at WARNING here so no request line is logged.

Requests in flight are bounded per client by a semaphore. httpcore's connection pool degrades
sharply as it grows (encode/httpx#3215); measured here on loopback, one pool of 15 connections did
~720 requests/s where 15 pools of one did ~1,570/s, and at 100 ms latency one pool of 60 fell to
~100/s against ~530/s for small pools. So the client spreads requests over several small httpx
clients ("lanes", from `build_http_clients`), always using the least busy one. With network
latency L a Page's 300/s needs about 300 x L requests in flight: raise `max_in_flight` for slow
links. Inside the semaphore an optional `RateLimiter` is acquired per Page right before the
request, so grants and requests on the wire coincide.
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from channels.messenger.errors import (
    ConnectionFailed,
    ErrorClass,
    MessengerError,
    PageCooling,
    SendTimedOut,
    UnexpectedResponse,
    error_from_response,
)
from channels.messenger.ratelimit import RateLimiter
from channels.messenger.retry import AlreadySent, RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

GRAPH_API_URL = "https://graph.facebook.com"
DEFAULT_MAX_IN_FLIGHT = 15
DEFAULT_CONNECTIONS_PER_CLIENT = 2
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
# A Page's pause after a rate-limit answer: the first, and the longest (see cooling_for).
PAGE_COOLDOWN_FIRST = 1.0
PAGE_COOLDOWN_CAP = 60.0
# The longest server hint (X-Business-Use-Case-Usage) a cool-down honours.
RETRY_AFTER_CAP = 3600.0

_VERSION = re.compile(r"v\d{1,3}\.\d{1,3}")

ResponseObserver = Callable[[str, str, float], None]
"""Told of each Graph API exchange: (edge such as "messages", outcome, seconds). The outcome is
"ok" or the error's `ErrorClass` value; the seconds cover the HTTP exchange only (not the wait
for a free slot or the rate limiter). It must be quick and must not raise: it runs on the send
path (an exception is logged and dropped, never turned into a failed send)."""


def quiet_transport_loggers() -> None:
    """httpx logs every request line at INFO; keep it and httpcore at WARNING (DESIGN §11)."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_transport_loggers()


def build_http_client(
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One `httpx.AsyncClient` whose pool holds `max_in_flight` connections. Fine up to ~15 in
    flight; beyond that prefer `build_http_clients` (see the module docstring)."""
    quiet_transport_loggers()
    return httpx.AsyncClient(limits=_limits(max_in_flight), timeout=timeout, transport=transport)


def build_http_clients(
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    connections_per_client: int = DEFAULT_CONNECTIONS_PER_CLIENT,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
) -> tuple[httpx.AsyncClient, ...]:
    """Enough small `httpx.AsyncClient`s ("lanes") to carry `max_in_flight` requests, sharing one
    TLS context. The app lifespan owns them and closes each (`aclose`)."""
    quiet_transport_loggers()
    if max_in_flight < 1 or connections_per_client < 1:
        raise ValueError("max_in_flight and connections_per_client must be at least 1")
    tls = ssl.create_default_context()
    limits = _limits(connections_per_client)
    count = -(-max_in_flight // connections_per_client)
    return tuple(
        httpx.AsyncClient(
            limits=limits,
            timeout=timeout,
            verify=tls,
            transport=transport() if transport is not None else None,
        )
        for _ in range(count)
    )


def _limits(connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        # Below uvicorn's and many proxies' 5 s keep-alive: reusing a connection the server is
        # closing fails mid-request, which for a send means "maybe delivered".
        keepalive_expiry=4.0,
    )


@dataclass(frozen=True)
class SendReceipt:
    """Meta's answer to a send. `recipient_id` is absent for user_ref sends (reference §2 [S3]) and
    when the receipt came from the `already_sent` hook (`via_echo`)."""

    recipient_id: str | None
    message_id: str
    via_echo: bool = False


@dataclass(frozen=True)
class SubscribedApp:
    app_id: str
    name: str | None
    subscribed_fields: tuple[str, ...]


def parse_send_response(data: Any) -> SendReceipt:
    """Both documented shapes: `{recipient_id, message_id}` and `{recipient: {id, message_id}}`
    (the latter in newer opt-in samples, reference §2 [S16][S22])."""
    if isinstance(data, Mapping):
        message_id = data.get("message_id")
        recipient_id = data.get("recipient_id")
        nested = data.get("recipient")
        if isinstance(nested, Mapping):
            message_id = message_id if message_id is not None else nested.get("message_id")
            recipient_id = recipient_id if recipient_id is not None else nested.get("id")
        if isinstance(message_id, str) and message_id:
            return SendReceipt(
                recipient_id=str(recipient_id) if isinstance(recipient_id, str | int) else None,
                message_id=message_id,
            )
    raise UnexpectedResponse(
        "Send API answered 2xx without a message id", http_status=200, maybe_delivered=True
    )


class MessengerClient:
    def __init__(
        self,
        http: httpx.AsyncClient | Sequence[httpx.AsyncClient],
        *,
        graph_api_url: str = GRAPH_API_URL,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        random: Callable[[], float] = random_module.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_response: ResponseObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._lanes = (http,) if isinstance(http, httpx.AsyncClient) else tuple(http)
        if not self._lanes:
            raise ValueError("MessengerClient needs at least one httpx.AsyncClient")
        self._lane_load = [0] * len(self._lanes)
        self._base = graph_api_url.rstrip("/")
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._rate_limiter = rate_limiter
        self._random = random
        self._sleep = sleep
        self._on_response = on_response
        self._clock = clock
        # Page id -> (cool-down end on `clock`, its length): see cooling_for.
        self._cooling: dict[str, tuple[float, float]] = {}

    # --- Send API ---

    async def send(
        self,
        page_id: str,
        access_token: str,
        graph_api_version: str,
        body: Mapping[str, Any],
        *,
        already_sent: AlreadySent | None = None,
    ) -> SendReceipt:
        """Send with the client's retry policy (see `channels.messenger.retry`).

        `already_sent` is consulted before resending after a failure that may have been accepted
        (timeout, dropped connection, temporary error): return the mid of the `message_echoes`
        event whose `metadata` is this delivery's id, or None if there is none. Raises the last
        typed `MessengerError` when the error is final or the attempts are spent.
        """
        outcome = await call_with_retry(
            lambda: self.send_once(page_id, access_token, graph_api_version, body),
            policy=self.retry_policy,
            random=self._random,
            sleep=self._sleep,
            already_sent=already_sent,
        )
        if outcome.value is not None:
            return outcome.value
        assert outcome.already_sent_mid is not None
        return SendReceipt(recipient_id=None, message_id=outcome.already_sent_mid, via_echo=True)

    async def send_once(
        self, page_id: str, access_token: str, graph_api_version: str, body: Mapping[str, Any]
    ) -> SendReceipt:
        """One attempt, no retry: for a dispatcher that records next-attempt times itself."""
        url = self._url(graph_api_version, page_id, "messages")
        data = await self._request("POST", url, access_token, json=body, rate_key=page_id)
        return parse_send_response(data)

    def cooling_for(self, page_id: str) -> float:
        """Seconds before this client sends for `page_id` again after a rate-limit answer.

        Reference section 6 (rate limiting: "exponential backoff", "throttle per Page"): a 613
        (or 4, 17, 32, 80001) pauses every send of that Page, not only the refused one, for the
        server's estimate if it gave one (`estimated_time_to_regain_access`, reference section 7,
        at most an hour), else 1 s, doubling while refusals continue up to PAGE_COOLDOWN_CAP;
        the next accepted send ends the escalation."""
        cooling = self._cooling.get(page_id)
        return 0.0 if cooling is None else max(0.0, cooling[0] - self._clock())

    def _cool_down(self, page_id: str, retry_after: float | None) -> None:
        now = self._clock()
        cooling = self._cooling.get(page_id)
        if cooling is not None and now < cooling[0]:
            return  # sends already in flight when the first refusal came: one pause, not many
        length = PAGE_COOLDOWN_FIRST if cooling is None else min(PAGE_COOLDOWN_CAP, cooling[1] * 2)
        if retry_after is not None:
            length = max(length, min(retry_after, RETRY_AFTER_CAP))
        self._cooling[page_id] = (now + length, length)

    # --- Page setup (DESIGN section 4: registering a Page sets and checks both) ---

    async def set_get_started(
        self, page_id: str, access_token: str, graph_api_version: str, payload: str
    ) -> None:
        """Sets the Get Started button; without it a new thread from an m.me link never posts
        back its `ref` (reference §5 [S16])."""
        url = self._url(graph_api_version, page_id, "messenger_profile")
        data = await self._retrying(
            "POST", url, access_token, json={"get_started": {"payload": payload}}
        )
        _expect_success(data, "messenger_profile")

    async def get_started_payload(
        self, page_id: str, access_token: str, graph_api_version: str
    ) -> str | None:
        """The configured Get Started payload, or None when the Page has none."""
        url = self._url(graph_api_version, page_id, "messenger_profile")
        data = await self._retrying("GET", url, access_token, params={"fields": "get_started"})
        entries = data.get("data") if isinstance(data, Mapping) else None
        for entry in entries if isinstance(entries, list) else []:
            started = entry.get("get_started") if isinstance(entry, Mapping) else None
            if isinstance(started, Mapping) and isinstance(started.get("payload"), str):
                return str(started["payload"])
        return None

    async def subscribe_app(
        self, page_id: str, access_token: str, graph_api_version: str, fields: Sequence[str]
    ) -> None:
        """Subscribes our app to the Page's webhook fields (reference §4.4 [S9])."""
        if not fields:
            raise ValueError("subscribe_app needs at least one field")
        url = self._url(graph_api_version, page_id, "subscribed_apps")
        data = await self._retrying(
            "POST", url, access_token, params={"subscribed_fields": ",".join(fields)}
        )
        _expect_success(data, "subscribed_apps")

    async def subscribed_apps(
        self, page_id: str, access_token: str, graph_api_version: str
    ) -> tuple[SubscribedApp, ...]:
        """The apps subscribed to the Page and their fields (to check `subscribe_app` held)."""
        url = self._url(graph_api_version, page_id, "subscribed_apps")
        data = await self._retrying("GET", url, access_token)
        entries = data.get("data") if isinstance(data, Mapping) else None
        apps: list[SubscribedApp] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping) or entry.get("id") is None:
                continue
            fields = entry.get("subscribed_fields")
            name = entry.get("name")
            apps.append(
                SubscribedApp(
                    app_id=str(entry["id"]),
                    name=name if isinstance(name, str) else None,
                    subscribed_fields=tuple(
                        str(item) for item in (fields if isinstance(fields, list) else [])
                    ),
                )
            )
        return tuple(apps)

    # --- plumbing ---

    def _url(self, graph_api_version: str, page_id: str, edge: str) -> str:
        if not _VERSION.fullmatch(graph_api_version):
            raise ValueError("graph_api_version must look like v25.0")
        if not page_id:
            raise ValueError("page_id must not be empty")
        return f"{self._base}/{graph_api_version}/{quote(page_id, safe='')}/{edge}"

    async def _retrying(
        self,
        method: str,
        url: str,
        access_token: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        outcome = await call_with_retry(
            lambda: self._request(method, url, access_token, json=json, params=params),
            policy=self.retry_policy,
            random=self._random,
            sleep=self._sleep,
        )
        return outcome.value

    async def _request(
        self,
        method: str,
        url: str,
        access_token: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        rate_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {access_token}"}
        if rate_key is not None:
            # Outside the in-flight slots: a cooling Page must not hold up the others.
            cooling = self.cooling_for(rate_key)
            if cooling > 0:
                await self._sleep(cooling)
        async with self._in_flight:
            if rate_key is not None and self._rate_limiter is not None:
                await self._rate_limiter.acquire(rate_key)
                cooling = self.cooling_for(rate_key)
                if cooling > 0:
                    # Calls queued for the Page's pace when a refusal came must not follow it
                    # into the limit; the caller retries (send) or defers (send_once callers).
                    raise PageCooling(
                        "the Page is cooling down after a rate-limit answer", retry_after=cooling
                    )
            # The least busy lane; under the semaphore it always has a free connection when the
            # lanes were sized by `build_http_clients`.
            lane = min(range(len(self._lanes)), key=self._lane_load.__getitem__)
            self._lane_load[lane] += 1
            started = time.perf_counter()
            try:
                response = await self._exchange(
                    self._lanes[lane], method, url, json=json, params=params, headers=headers
                )
            except MessengerError as exc:
                self._observe(url, time.perf_counter() - started, exc)
                raise
            finally:
                self._lane_load[lane] -= 1
            elapsed = time.perf_counter() - started
        status = response.status_code
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if 200 <= status < 300:
            if data is None:
                unexpected = UnexpectedResponse(
                    "Graph API answered 2xx without JSON", http_status=status, maybe_delivered=True
                )
                self._observe(url, elapsed, unexpected)
                raise unexpected
            self._observe(url, elapsed, None)
            if rate_key is not None:
                self._cooling.pop(rate_key, None)
            return data
        error = error_from_response(status, data, response.headers)
        self._observe(url, elapsed, error)
        if rate_key is not None and error.error_class is ErrorClass.RATE_LIMITED:
            self._cool_down(rate_key, error.retry_after)
        raise _logged(error)

    def _observe(self, url: str, seconds: float, error: MessengerError | None) -> None:
        if self._on_response is None:
            return
        edge = url.rsplit("/", 1)[-1]
        outcome = "ok" if error is None else error.error_class.value
        try:
            self._on_response(edge, outcome, seconds)
        except Exception:  # metrics must never turn a sent message into a failure
            log.warning("Graph API response observer failed", exc_info=True)

    async def _exchange(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """One HTTP exchange, body read, transport failures mapped to typed errors."""
        try:
            response = await http.request(
                method, url, json=json, params=params, headers=headers, timeout=self._timeout
            )
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Meta: resending cannot duplicate.
            raise SendTimedOut(_describe(exc), maybe_delivered=False) from exc
        except httpx.TimeoutException as exc:
            # Written but unanswered: Meta may have accepted it (reference §6: check echoes).
            raise SendTimedOut(_describe(exc), maybe_delivered=True) from exc
        except httpx.ConnectError as exc:
            raise ConnectionFailed(_describe(exc), maybe_delivered=False) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(_describe(exc), maybe_delivered=True) from exc
        return response


def _expect_success(data: Any, edge: str) -> None:
    # messenger_profile answers {"result": "success"}, subscribed_apps {"success": true}.
    if isinstance(data, Mapping) and (
        data.get("result") == "success" or data.get("success") is True
    ):
        return
    raise UnexpectedResponse(f"{edge} did not answer success", http_status=200)


def _describe(exc: httpx.HTTPError) -> str:
    # The type name only: the token is in a header, never in the URL, but the message stays terse.
    return f"{type(exc).__name__} talking to the Graph API"


def _logged(error: MessengerError) -> MessengerError:
    log.info(
        "Graph API error %s code=%s subcode=%s status=%s fbtrace_id=%s",
        error.error_class.value,
        error.code,
        error.subcode,
        error.http_status,
        error.fbtrace_id,
    )
    return error
