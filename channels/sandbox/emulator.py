"""The Graph API emulator: state, the Send API rules, injected faults, and people acting on Pages.

`GraphEmulator` is the imperative shell around the pure modules (`send_validation`,
`messaging_window`, `webhook_events`, `signature`, `rate_limit`, `faults`). Its `.app` is the thin
ASGI surface; tests call its control methods directly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Literal, cast
from urllib.parse import parse_qsl

import httpx
from starlette.types import ASGIApp

from channels.sandbox import webhook_events as events
from channels.sandbox.app import GraphAnswer, IncomingRequest, build_app
from channels.sandbox.faults import Endpoint, Fault, FaultBook
from channels.sandbox.graph_errors import (
    GraphError,
    invalid_parameter,
    invalid_token,
    no_matching_user,
    rate_limited,
    unknown_object,
)
from channels.sandbox.messaging_window import (
    ThreadState,
    check_psid_send,
    record_inbound,
    window_open,
)
from channels.sandbox.rate_limit import SlidingWindowLimiter
from channels.sandbox.records import (
    DEFAULT_SUBSCRIBED_FIELDS,
    KNOWN_FIELDS,
    Comment,
    NotificationToken,
    OneTimeToken,
    Page,
    RecordedRequest,
    SentMessage,
    TokenLocation,
    WebhookDelivery,
)
from channels.sandbox.send_validation import SendRequest, parse_send_request
from channels.sandbox.signature import (
    LEGACY_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    encode_body,
    sign,
    sign_legacy,
)
from channels.sandbox.variants import StopSpelling, Variants
from channels.sandbox.webhook_events import PAGE_INBOX_APP_ID, WebhookEvent, from_ms, to_ms

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
AfterSendTiming = Literal["inline", "background", "deferred"]

_VERSION = re.compile(r"v\d+\.\d+")
OTN_TOKEN_LIFETIME = timedelta(days=365)  # reference §3.1: expires within 1 year [S18]
OTN_REQUEST_GAP = timedelta(days=7)  # reference §3.2 limits: 1 opt-in request per title per week
NM_SEND_COOLDOWN = timedelta(hours=48)  # reference §3.2 status: 1 per 48 h from Sep 1, 2025
NM_DEFAULT_LIFETIME = timedelta(days=182)  # reference §3.2: DAILY tokens last 6 months [S13]
PRIVATE_REPLY_WINDOW = timedelta(days=7)  # reference §8, [S17]
PROFILE_FIELDS = frozenset(
    {
        "get_started",
        "greeting",
        "persistent_menu",
        "ice_breakers",
        "whitelisted_domains",
        "account_linking_url",
        "home_url",
    }
)


def system_clock() -> datetime:
    """Real UTC time: the emulator's default clock and the one place it reads the time."""
    return datetime.now(UTC)


@dataclass
class AfterSend:
    """What Meta posts after a successful send, and when (reference §4.5, [S14][S15]).

    timing "inline": posted before the Send API answers (deterministic for tests);
    "background": posted after the answer is written (real-HTTP ordering);
    "deferred": queued in `GraphEmulator.pending` until `flush()` or `take_pending()`.
    """

    echo: bool = True
    delivery: bool = True
    timing: AfterSendTiming = "inline"


class GraphEmulator:
    """An in-memory Graph API (Send API, messenger_profile, subscribed_apps) and its webhooks.

    `clock` gives the emulator's time (default: real UTC); `webhook_client` posts webhooks (e.g.
    an `httpx.AsyncClient` over `httpx.ASGITransport`; default: a fresh client per post, real
    HTTP); `sleep` is awaited for latency and delay faults; `id_seed` makes mids, tokens and
    fbtrace ids reproducible. Every attribute set here may be changed by tests at any time.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        webhook_client: httpx.AsyncClient | None = None,
        variants: Variants | None = None,
        after_send: AfterSend | None = None,
        send_rate_per_second: int = 300,
        media_rate_per_second: int = 10,
        sleep: Sleep = asyncio.sleep,
        webhook_timeout_seconds: float = 5.0,
        id_seed: str = "sandbox",
    ) -> None:
        self.clock: Clock = clock or system_clock
        self.webhook_client = webhook_client
        self.variants = variants or Variants()
        self.after_send = after_send or AfterSend()
        # reference §7, [S7]: 300 calls/s per Page for text etc., 10/s for audio or video.
        self.send_rate_per_second = send_rate_per_second
        self.media_rate_per_second = media_rate_per_second
        self.latency_seconds = 0.0
        self.webhook_timeout_seconds = webhook_timeout_seconds
        self.pages: dict[str, Page] = {}
        self.faults = FaultBook()
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentMessage] = []
        self.deliveries: list[WebhookDelivery] = []
        self.pending: list[WebhookEvent] = []
        self.one_time_tokens: dict[str, OneTimeToken] = {}
        self.notification_tokens: dict[str, NotificationToken] = {}
        self.comments: dict[str, Comment] = {}
        self.user_refs: dict[str, str] = {}
        self._optin_requests: dict[tuple[str, str, str], datetime] = {}
        self._sleep = sleep
        self._seed = id_seed
        self._counter = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()
        self.app: ASGIApp = build_app(self)

    # ------------------------------------------------------------------ setup and inspection

    def now(self) -> datetime:
        return self.clock()

    def register_page(
        self,
        page_id: str,
        *,
        username: str,
        access_token: str,
        app_id: str,
        app_secret: str,
        webhook_url: str | None = None,
        webhook_client: httpx.AsyncClient | None = None,
        get_started_payload: str | None = None,
        subscribed_fields: Iterable[str] | None = DEFAULT_SUBSCRIBED_FIELDS,
        human_agent_enabled: bool = True,
        otn_enabled: bool = True,
        notification_messages_enabled: bool = False,
        app_name: str = "Sandbox App",
    ) -> Page:
        """Add a Page. `get_started_payload` set means the Page has a Get Started button;
        `subscribed_fields=None` means the app is not subscribed to the Page yet."""
        fields = set(subscribed_fields or ())
        unknown = fields - KNOWN_FIELDS
        if unknown:
            raise ValueError(f"unknown webhook fields: {sorted(unknown)}")
        page = Page(
            page_id=page_id,
            username=username,
            access_token=access_token,
            app_id=app_id,
            app_secret=app_secret,
            webhook_url=webhook_url,
            webhook_client=webhook_client,
            app_name=app_name,
            human_agent_enabled=human_agent_enabled,
            otn_enabled=otn_enabled,
            notification_messages_enabled=notification_messages_enabled,
            subscribed_fields=fields,
            limiter=SlidingWindowLimiter(self.send_rate_per_second),
            media_limiter=SlidingWindowLimiter(self.media_rate_per_second),
        )
        if get_started_payload is not None:
            page.messenger_profile["get_started"] = {"payload": get_started_payload}
        self.pages[page_id] = page
        return page

    def page(self, page_id: str) -> Page:
        try:
            return self.pages[page_id]
        except KeyError:
            raise KeyError(f"no Page {page_id!r} registered with the emulator") from None

    def new_psid(self) -> str:
        return str(7_000_000_000_000_000 + next(self._counter))

    def add_person(
        self,
        page_id: str,
        psid: str | None = None,
        *,
        window_opened_at: datetime | None = None,
        last_message_at: datetime | None = None,
    ) -> str:
        """Seed a thread without any webhook: the person is known to the Page."""
        page = self.page(page_id)
        psid = psid or self.new_psid()
        page.threads[psid] = ThreadState(
            window_opened_at=window_opened_at,
            last_person_message_at=last_message_at,
            person_messages=1 if last_message_at is not None else 0,
        )
        return psid

    def thread(self, page_id: str, psid: str) -> ThreadState | None:
        return self.page(page_id).threads.get(psid)

    def is_window_open(self, page_id: str, psid: str) -> bool:
        state = self.thread(page_id, psid)
        return state is not None and window_open(state, self.now())

    def sent_to(self, page_id: str, psid: str) -> list[SentMessage]:
        return [m for m in self.sent if m.page_id == page_id and m.psid == psid]

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.endpoint == endpoint]

    # ------------------------------------------------------------------ faults

    def inject_error(
        self,
        code: int,
        subcode: int | None = None,
        *,
        message: str | None = None,
        http_status: int = 400,
        is_transient: bool | None = None,
        endpoint: Endpoint = "messages",
        page_id: str | None = None,
        psid: str | None = None,
        times: int | None = None,
        duration: timedelta | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> Fault:
        """Answer Graph error (code, subcode) to matching requests.

        Lasts `times` requests and/or until `duration`/`until` passes on the emulator clock; with
        none of them (and not `forever`) it hits the next matching request only.
        """
        return self._add_fault(
            Fault(
                fault_id=self.faults.next_id(),
                kind="error",
                endpoint=endpoint,
                page_id=page_id,
                psid=psid,
                code=code,
                subcode=subcode,
                message=message,
                http_status=http_status,
                is_transient=is_transient,
            ),
            times,
            duration,
            until,
            forever,
        )

    def inject_rate_limit(
        self,
        subcode: int | None = None,
        *,
        endpoint: Endpoint = "messages",
        page_id: str | None = None,
        psid: str | None = None,
        times: int | None = None,
        duration: timedelta | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> Fault:
        """613 "Calls to this api have exceeded the rate limit" (reference §6), HTTP 400."""
        return self.inject_error(
            613,
            subcode,
            endpoint=endpoint,
            page_id=page_id,
            psid=psid,
            times=times,
            duration=duration,
            until=until,
            forever=forever,
        )

    def inject_temporary_failure(
        self,
        *,
        endpoint: Endpoint = "messages",
        page_id: str | None = None,
        psid: str | None = None,
        times: int | None = None,
        duration: timedelta | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> Fault:
        """1200 "Temporary send message failure" (reference §6, [T10]), HTTP 400."""
        return self.inject_error(
            1200,
            endpoint=endpoint,
            page_id=page_id,
            psid=psid,
            times=times,
            duration=duration,
            until=until,
            forever=forever,
        )

    def inject_http_status(
        self,
        status: int = 503,
        *,
        body: bytes | None = None,
        content_type: str = "text/plain",
        endpoint: Endpoint = "messages",
        page_id: str | None = None,
        psid: str | None = None,
        times: int | None = None,
        duration: timedelta | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> Fault:
        """Answer a bare HTTP `status` (default body: the reason phrase), like a failing edge."""
        return self._add_fault(
            Fault(
                fault_id=self.faults.next_id(),
                kind="http_status",
                endpoint=endpoint,
                page_id=page_id,
                psid=psid,
                http_status=status,
                body=body,
                content_type=content_type,
            ),
            times,
            duration,
            until,
            forever,
        )

    def inject_delay(
        self,
        seconds: float,
        *,
        endpoint: Endpoint = "messages",
        page_id: str | None = None,
        psid: str | None = None,
        times: int | None = None,
        duration: timedelta | None = None,
        until: datetime | None = None,
        forever: bool = False,
    ) -> Fault:
        """Sleep `seconds` (really) before answering; the request is then processed as usual, so
        a client that timed out may still have sent the message (reference §6: sends are not
        idempotent). httpx.ASGITransport enforces no timeouts: test timeouts over loopback."""
        return self._add_fault(
            Fault(
                fault_id=self.faults.next_id(),
                kind="delay",
                endpoint=endpoint,
                page_id=page_id,
                psid=psid,
                delay_seconds=seconds,
            ),
            times,
            duration,
            until,
            forever,
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    def _add_fault(
        self,
        fault: Fault,
        times: int | None,
        duration: timedelta | None,
        until: datetime | None,
        forever: bool,
    ) -> Fault:
        if duration is not None:
            end = self.now() + duration
            until = end if until is None else min(until, end)
        if times is None and until is None and not forever:
            times = 1
        fault.remaining = times
        fault.until = until
        return self.faults.add(fault)

    # ------------------------------------------------------------------ the Graph API surface

    async def handle(self, request: IncomingRequest) -> GraphAnswer:
        """Answer one Graph API request and record it."""
        arrived = self.now()
        if self.latency_seconds > 0:
            await self._sleep(self.latency_seconds)
        segments = [part for part in request.path.split("/") if part]
        if segments and _VERSION.fullmatch(segments[0]):
            segments = segments[1:]
        edge = segments[1] if len(segments) == 2 else "unknown"
        endpoint = (
            edge if edge in ("messages", "messenger_profile", "subscribed_apps") else "unknown"
        )
        query = dict(request.query)
        headers = {name.lower(): value for name, value in request.headers.items()}
        recorded_query = dict(query)
        if "access_token" in recorded_query:
            recorded_query["access_token"] = token_marker("query")
        recorded_headers = dict(headers)
        if "authorization" in recorded_headers:
            recorded_headers["authorization"] = token_marker("header")

        tokens: dict[TokenLocation, str] = {}
        header_token = _bearer(headers.get("authorization"))
        if header_token is not None:
            tokens["header"] = header_token
        if "access_token" in query:
            tokens["query"] = query.pop("access_token")

        page_id: str | None = None
        recorded_body: Any = None
        try:
            body = _parse_body(request.body, headers.get("content-type", ""))
            recorded_body = _redact_body(body)
            if isinstance(body, dict) and "access_token" in body:
                tokens["body"] = str(body.pop("access_token"))
            params = {key: _decode_param(value) for key, value in query.items()}
            if isinstance(body, dict):
                params.update(body)
            node = segments[0] if segments else ""
            page_id = self._peek_page_id(node, tokens)
            psid = _recipient_id(params)
            for delay in self.faults.take_delays(endpoint, page_id, psid, self.now()):
                await self._sleep(delay.delay_seconds)
            failure = self.faults.take_failure(endpoint, page_id, psid, self.now())
            if failure is not None:
                answer = self._fault_answer(failure)
            else:
                answer = await self._route(request.method.upper(), segments, edge, params, tokens)
        except GraphError as error:
            answer = self._error_answer(error)
        self.requests.append(
            RecordedRequest(
                at=arrived,
                method=request.method.upper(),
                path=request.path,
                query=recorded_query,
                headers=recorded_headers,
                body=recorded_body,
                token_locations=tuple(tokens),
                endpoint=endpoint,
                page_id=page_id,
                status_code=answer.status_code,
                response=_json_or_text(answer.body),
            )
        )
        return answer

    async def _route(
        self,
        method: str,
        segments: list[str],
        edge: str,
        params: dict[str, Any],
        tokens: Mapping[TokenLocation, str],
    ) -> GraphAnswer:
        if len(segments) != 2:
            raise GraphError(2500, None, f"Unknown path components: /{'/'.join(segments)}")
        page = self._authorize(segments[0], tokens)
        if edge == "messages" and method == "POST":
            return await self._send(page, params)
        if edge == "messenger_profile":
            return self._messenger_profile(page, method, params)
        if edge == "subscribed_apps":
            return self._subscribed_apps(page, method, params)
        if edge == "messages":
            raise invalid_parameter(f"Unsupported {method.lower()} request.")
        raise GraphError(2500, None, f"Unknown path components: /{edge}")

    def _peek_page_id(self, node: str, tokens: Mapping[TokenLocation, str]) -> str | None:
        if node != "me":
            return node or None
        for token in tokens.values():
            page = self._page_by_token(token)
            if page is not None:
                return page.page_id
        return None

    def _page_by_token(self, token: str) -> Page | None:
        return next((page for page in self.pages.values() if page.access_token == token), None)

    def _authorize(self, node: str, tokens: Mapping[TokenLocation, str]) -> Page:
        values = set(tokens.values())
        if not values:
            # Graph answers 104 here; the reference only lists 190 for token trouble (§6).
            raise invalid_token("An access token is required to request this resource.")
        if len(values) > 1:
            raise invalid_token("Error validating access token: conflicting access tokens given.")
        page = self._page_by_token(values.pop())
        if page is None:
            raise invalid_token()
        if node == "me":
            return page
        target = self.pages.get(node)
        if target is None:
            raise unknown_object(node)
        if target is not page:
            raise invalid_token(
                "Error validating access token: the token does not belong to this Page."
            )
        return target

    # ------------------------------------------------------------------ Send API

    async def _send(self, page: Page, params: Mapping[str, Any]) -> GraphAnswer:
        request = parse_send_request(params, self.variants)
        now = self.now()
        limiter = page.media_limiter if request.is_media else page.limiter
        if not limiter.admit(now):
            # reference §7, [S7] and §6: over budget answers 613 (HTTP 400, not 429).
            raise rate_limited()
        psid = self._check_recipient(page, request, now)
        if request.sender_action is not None:
            return _json_answer(self._success_body(psid, None))

        mid = self._new_id("m_")
        sent = SentMessage(
            page_id=page.page_id,
            psid=psid,
            recipient_kind=request.recipient_kind,
            recipient=request.recipient,
            mid=mid,
            at=now,
            messaging_type=request.messaging_type,
            tag=request.tag,
            message=request.message,
            sender_action=None,
            metadata=request.metadata,
            app_id=page.app_id,
        )
        self.sent.append(sent)
        answer = _json_answer(self._success_body(psid, mid))
        if psid is not None:
            follow_up = self._after_send_events(page, sent, psid)
            if self.after_send.timing == "inline":
                await self.post_each(follow_up)
            elif self.after_send.timing == "background":
                answer.background.extend(follow_up)
            else:
                self.pending.extend(follow_up)
        return answer

    def _check_recipient(self, page: Page, request: SendRequest, now: datetime) -> str | None:
        """Apply the Page/person rules; return the PSID the message reaches (None for user_ref)."""
        kind = request.recipient_kind
        if kind == "id":
            psid = request.recipient
            state = page.threads.get(psid)
            if state is None:
                raise no_matching_user()
            if request.tag == "HUMAN_AGENT" and not page.human_agent_enabled:
                # reference §2: HUMAN_AGENT needs the Human Agent feature through App Review.
                raise GraphError(10, None, "(#10) This Page has not been approved for HUMAN_AGENT.")
            refusal = check_psid_send(state, request, now)
            if refusal is not None:
                raise refusal
            self._check_optin_template(page, request, psid, now)
            return psid
        if kind == "user_ref":
            if self.user_refs.get(request.recipient) != page.page_id:
                raise no_matching_user()
            return None
        if kind == "one_time_notif_token":
            return self._use_one_time_token(page, request.recipient, now)
        if kind == "notification_messages_token":
            return self._use_notification_token(page, request.recipient, now)
        return self._use_private_reply(page, request, now)

    def _check_optin_template(
        self, page: Page, request: SendRequest, psid: str, now: datetime
    ) -> None:
        if request.template_type == "one_time_notif_req" and not page.otn_enabled:
            # reference §3.1: the Page must apply for the One-Time Notification permission [S18].
            raise GraphError(
                10, None, "(#10) This Page lacks the One-Time Notification permission."
            )
        if request.template_type != "notification_messages":
            return
        if not page.notification_messages_enabled:
            # reference §3.2: discontinued Feb 10, 2026 outside AU/EU/JP/KR/UK; code undocumented.
            raise GraphError(
                10, None, "(#10) Marketing Messages opt-in is not available for this Page."
            )
        payload = request.template_payload or {}
        title = str(payload.get("title") or "Updates and promotions")
        key = (page.page_id, psid, title)
        last = self._optin_requests.get(key)
        if last is not None and now < last + OTN_REQUEST_GAP:
            # reference §3.2: 1 opt-in request per title per user per week; 613/1893016 [S5].
            raise GraphError(613, 1893016)
        self._optin_requests[key] = now

    def _use_one_time_token(self, page: Page, token: str, now: datetime) -> str:
        code, subcode = self.variants.otn_token_error
        record = self.one_time_tokens.get(token)
        if not page.otn_enabled:
            raise GraphError(
                10, None, "(#10) This Page lacks the One-Time Notification permission."
            )
        if record is None or record.page_id != page.page_id:
            raise GraphError(code, subcode, f"(#{code}) The one_time_notif_token is invalid.")
        if record.used_at is not None:
            # reference §3.1: the token is single use [S18]; the error code is UNCONFIRMED (§10).
            raise GraphError(code, subcode, f"(#{code}) The one_time_notif_token was already used.")
        if now >= record.issued_at + OTN_TOKEN_LIFETIME:
            raise GraphError(code, subcode, f"(#{code}) The one_time_notif_token has expired.")
        record.used_at = now
        return record.psid

    def _use_notification_token(self, page: Page, token: str, now: datetime) -> str:
        record = self.notification_tokens.get(token)
        if not page.notification_messages_enabled:
            raise GraphError(10, None, "(#10) Marketing Messages are not available for this Page.")
        if record is None or record.page_id != page.page_id or now >= record.expires_at:
            # reference §3.2 errors: 100 "notification_messages_token is invalid / has expired".
            raise invalid_parameter("notification_messages_token is invalid or has expired")
        if record.stopped:
            raise GraphError(10, 1893015)
        if record.last_sent_at is not None and now < record.last_sent_at + NM_SEND_COOLDOWN:
            raise GraphError(4, 2018354)
        record.last_sent_at = now
        return record.psid

    def _use_private_reply(self, page: Page, request: SendRequest, now: datetime) -> str:
        comment = (
            self.comments.get(request.recipient) if request.recipient_kind == "comment_id" else None
        )
        if (
            comment is None
            or comment.page_id != page.page_id
            or comment.replied
            or now >= comment.created_at + PRIVATE_REPLY_WINDOW
        ):
            # reference §8: one private reply per comment, within 7 days; else 100/2534025 [S5].
            raise GraphError(100, 2534025)
        comment.replied = True
        page.threads.setdefault(comment.psid, ThreadState())
        return comment.psid

    def _success_body(self, psid: str | None, mid: str | None) -> dict[str, Any]:
        # reference §2: recipient_id is omitted for user_ref recipients [S3]; some samples answer
        # {"recipient": {"id", "message_id"}} instead [S16][S22].
        if self.variants.send_response_shape == "recipient_object":
            inner: dict[str, Any] = {}
            if psid is not None:
                inner["id"] = psid
            if mid is not None:
                inner["message_id"] = mid
            return {"recipient": inner}
        body: dict[str, Any] = {}
        if psid is not None:
            body["recipient_id"] = psid
        if mid is not None:
            body["message_id"] = mid
        return body

    def _after_send_events(self, page: Page, sent: SentMessage, psid: str) -> list[WebhookEvent]:
        stamp = to_ms(sent.at)
        follow_up: list[WebhookEvent] = []
        if self.after_send.echo:
            follow_up.append(self._echo_for(page, sent, psid, stamp, page.app_id))
        if self.after_send.delivery:
            follow_up.append(self._delivery_for(page.page_id, psid, [sent.mid], stamp))
        return follow_up

    def _echo_for(
        self, page: Page, sent: SentMessage, psid: str, stamp: int, app_id: str
    ) -> WebhookEvent:
        message = sent.message or {}
        attachments: list[Mapping[str, Any]] = []
        attachment = message.get("attachment")
        if isinstance(attachment, Mapping):
            attachments.append(
                {"type": attachment.get("type"), "payload": attachment.get("payload")}
            )
        for item in message.get("attachments") or ():
            attachments.append({"type": item.get("type"), "payload": item.get("payload")})
        if "sticker_id" in message:
            attachments.append({"type": "image", "payload": {"sticker_id": message["sticker_id"]}})
        return events.echo_event(
            page.page_id,
            psid,
            timestamp_ms=stamp,
            mid=sent.mid,
            app_id=app_id,
            app_id_as_int=self.variants.echo_app_id_as_int,
            text=message.get("text"),
            attachments=attachments,
            quick_replies=message.get("quick_replies"),
            metadata=sent.metadata,
        )

    def _delivery_for(
        self, page_id: str, psid: str, mids: Sequence[str] | None, watermark_ms: int
    ) -> WebhookEvent:
        return events.delivery_event(
            page_id,
            psid,
            watermark_ms=watermark_ms,
            mids=mids if self.variants.delivery_includes_mids else None,
            timestamp_ms=watermark_ms if self.variants.delivery_includes_timestamp else None,
        )

    # ------------------------------------------------------------------ messenger_profile

    def _messenger_profile(self, page: Page, method: str, params: Mapping[str, Any]) -> GraphAnswer:
        if method == "GET":
            wanted = _field_list(params.get("fields"))
            if not wanted:
                raise invalid_parameter("The parameter fields is required")
            found = {
                name: page.messenger_profile[name]
                for name in wanted
                if name in page.messenger_profile
            }
            return _json_answer({"data": [found] if found else []})
        if method == "DELETE":
            names = _field_list(params.get("fields"))
            if not names:
                raise invalid_parameter("The parameter fields is required")
            for name in names:
                page.messenger_profile.pop(name, None)
            return _json_answer({"result": "success"})
        if method != "POST":
            raise invalid_parameter(f"Unsupported {method.lower()} request.")
        given = {key: value for key, value in params.items() if key not in ("fields",)}
        if not given:
            raise invalid_parameter("At least one messenger profile field is required")
        unknown = sorted(set(given) - PROFILE_FIELDS)
        if unknown:
            raise invalid_parameter(f"Unsupported messenger profile field(s): {', '.join(unknown)}")
        if "get_started" in given:
            get_started = given["get_started"]
            payload = get_started.get("payload") if isinstance(get_started, Mapping) else None
            if not isinstance(payload, str) or not payload.strip() or len(payload) > 1000:
                raise invalid_parameter(
                    "param get_started[payload] must be a non-empty string of at most 1000 characters"
                )
        if (
            "persistent_menu" in given
            and "get_started" not in given
            and page.get_started_payload is None
        ):
            raise invalid_parameter(
                "You must set a Get Started button if you also wish to use persistent menu."
            )
        page.messenger_profile.update(given)
        return _json_answer({"result": "success"})

    # ------------------------------------------------------------------ subscribed_apps

    def _subscribed_apps(self, page: Page, method: str, params: Mapping[str, Any]) -> GraphAnswer:
        if method == "GET":
            if not page.subscribed_fields:
                return _json_answer({"data": []})
            app = {
                "category": "Business",
                "link": "https://sandbox.invalid/",
                "name": page.app_name,
                "id": page.app_id,
                "subscribed_fields": sorted(page.subscribed_fields),
            }
            return _json_answer({"data": [app]})
        if method == "DELETE":
            page.subscribed_fields = set()
            return _json_answer({"success": True})
        if method != "POST":
            raise invalid_parameter(f"Unsupported {method.lower()} request.")
        fields = _field_list(params.get("subscribed_fields"))
        if not fields:
            raise invalid_parameter("The parameter subscribed_fields is required")
        unknown = [name for name in fields if name not in KNOWN_FIELDS]
        if unknown:
            raise invalid_parameter(
                f"Param subscribed_fields must be one of {sorted(KNOWN_FIELDS)} - got {unknown[0]!r}"
            )
        # reference §4.4, [S9]: POST /{PAGE_ID}/subscribed_apps?subscribed_fields=... sets the list.
        page.subscribed_fields = set(fields)
        return _json_answer({"success": True})

    # ------------------------------------------------------------------ answers

    def _error_answer(self, error: GraphError) -> GraphAnswer:
        body = error.body(self._new_id("A"))
        return GraphAnswer(error.http_status, encode_body(body))

    def _fault_answer(self, fault: Fault) -> GraphAnswer:
        if fault.kind == "http_status":
            status = fault.http_status
            body = fault.body if fault.body is not None else _reason(status).encode("ascii")
            return GraphAnswer(status, body, fault.content_type)
        error = GraphError(
            cast(int, fault.code),
            fault.subcode,
            fault.message,
            http_status=fault.http_status,
            is_transient=fault.is_transient,
        )
        return self._error_answer(error)

    def _new_id(self, prefix: str) -> str:
        digest = hashlib.sha256(f"{self._seed}:{prefix}:{next(self._counter)}".encode()).digest()
        return prefix + base64.urlsafe_b64encode(digest[:24]).decode("ascii").rstrip("=")

    # ------------------------------------------------------------------ webhooks out

    async def post_events(
        self, batch: Sequence[WebhookEvent], *, group_by_page: bool = False
    ) -> WebhookDelivery:
        """POST `batch` in one signed body, one entry per event (or grouped per Page).

        Events whose field the Page is not subscribed to are left out (reference §4.4); if none
        is left, or the Page has no webhook URL, nothing is posted and the delivery says why.
        """
        if not batch:
            raise ValueError("nothing to post")
        now = self.now()
        pages = [self.page(event.page_id) for event in batch]
        targets = {(page.webhook_url, page.app_secret) for page in pages}
        if len(targets) > 1:
            raise ValueError("events for Pages with different webhook targets cannot share a body")
        first = pages[0]
        wanted = tuple(event for event in batch if _subscribed(self.pages[event.page_id], event))
        if first.webhook_url is None or not wanted:
            reason = "no webhook URL" if first.webhook_url is None else "Page not subscribed"
            delivery = WebhookDelivery(
                now, first.webhook_url, b"", {}, tuple(batch), skipped=reason
            )
            self.deliveries.append(delivery)
            return delivery
        body = encode_body(
            events.build_envelope(wanted, group_by_page=group_by_page),
            escape_slashes=self.variants.escape_slashes,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            SIGNATURE_HEADER: sign(body, first.app_secret),
            LEGACY_SIGNATURE_HEADER: sign_legacy(body, first.app_secret),
        }
        return await self._post_raw(first, now, body, headers, wanted)

    async def post_each(self, batch: Iterable[WebhookEvent]) -> list[WebhookDelivery]:
        """POST each event in its own body, in the given order."""
        return [await self.post_events([event]) for event in batch]

    async def redeliver(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """POST the very same bytes and headers again, as Meta's retries do (reference §4.3)."""
        if delivery.url is None or not delivery.events:
            raise ValueError("that delivery was never posted")
        page = self.page(delivery.events[0].page_id)
        return await self._post_raw(
            page, self.now(), delivery.body, delivery.headers, delivery.events
        )

    def take_pending(self) -> list[WebhookEvent]:
        """Hand over (and forget) the queued after-send events, for the test to post in any order."""
        taken, self.pending = self.pending, []
        return taken

    async def flush(self, *, batch: bool = False) -> list[WebhookDelivery]:
        """POST the queued after-send events in order: one body each, or all in one body."""
        taken = self.take_pending()
        if not taken:
            return []
        if batch:
            return [await self.post_events(taken)]
        return await self.post_each(taken)

    async def post_background(self, batch: Sequence[WebhookEvent]) -> None:
        """Used by the ASGI layer for `AfterSend(timing="background")`."""
        await self.post_each(batch)

    async def verify_webhook(
        self, page_id: str, verify_token: str, challenge: str = "1158201444"
    ) -> bool:
        """Run Meta's GET handshake against the Page's webhook URL (reference §4.1, [S8][S9])."""
        page = self.page(page_id)
        if page.webhook_url is None:
            raise ValueError(f"Page {page_id} has no webhook URL")
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": verify_token,
            "hub.challenge": challenge,
        }
        response = await self._http(page, "GET", page.webhook_url, params=params)
        return response.status_code == 200 and response.text == challenge

    async def _post_raw(
        self,
        page: Page,
        now: datetime,
        body: bytes,
        headers: Mapping[str, str],
        sent_events: tuple[WebhookEvent, ...],
    ) -> WebhookDelivery:
        url = cast(str, page.webhook_url)
        delivery = WebhookDelivery(now, url, body, dict(headers), sent_events)
        try:
            response = await self._http(page, "POST", url, content=body, headers=headers)
            delivery.status_code = response.status_code
        except Exception as exc:  # the receiver's failure is data for the test, not ours to raise
            delivery.error = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(delivery)
        return delivery

    async def _http(self, page: Page, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = page.webhook_client or self.webhook_client
        if client is not None:
            return await client.request(method, url, **kwargs)
        async with httpx.AsyncClient(timeout=self.webhook_timeout_seconds) as own:
            return await own.request(method, url, **kwargs)

    # ------------------------------------------------------------------ people acting

    def _stamp(self, at: datetime | None) -> int:
        return to_ms(at if at is not None else self.now())

    def _inbound(
        self,
        page: Page,
        psid: str,
        stamp: int,
        *,
        opens_window: bool = True,
        is_message: bool = False,
        from_ad: bool = False,
    ) -> None:
        # reference §9: only inbound person events move the window; echoes, deliveries and
        # reads never do.
        state = page.threads.get(psid, ThreadState())
        page.threads[psid] = record_inbound(
            state,
            from_ms(stamp),
            opens_window=opens_window,
            is_message=is_message,
            from_ad=from_ad,
            click_to_messenger_window=self.variants.ctm_seven_day_window,
        )

    async def _emit(self, event: WebhookEvent, post: bool) -> WebhookEvent:
        if post:
            await self.post_events([event])
        return event

    async def person_writes(
        self,
        page_id: str,
        psid: str,
        text: str | None = None,
        *,
        attachments: Sequence[Mapping[str, Any]] | None = None,
        reply_to_mid: str | None = None,
        ad_id: str | None = None,
        ads_context_data: Mapping[str, Any] | None = None,
        mid: str | None = None,
        at: datetime | None = None,
        standby: bool = False,
        post: bool = True,
    ) -> WebhookEvent:
        """The person sends a message (opens the window, counts as their last message)."""
        if text is None and not attachments:
            raise ValueError("a message needs text or attachments")
        page = self.page(page_id)
        stamp = self._stamp(at)
        referral = None
        if ad_id is not None:
            referral = events.referral_body(
                None, source="ADS", ad_id=ad_id, ads_context_data=ads_context_data
            )
        self._inbound(page, psid, stamp, is_message=True, from_ad=ad_id is not None)
        event = events.message_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            mid=mid or self._new_id("m_"),
            text=text,
            attachments=attachments,
            reply_to_mid=reply_to_mid,
            referral=referral,
            standby=standby,
        )
        return await self._emit(event, post)

    async def person_taps_quick_reply(
        self,
        page_id: str,
        psid: str,
        payload: str,
        *,
        text: str | None = None,
        mid: str | None = None,
        at: datetime | None = None,
        standby: bool = False,
        post: bool = True,
    ) -> WebhookEvent:
        """A `text` quick reply tap: a `messages` event whose text is the button title (looked up
        in what the Page last sent this person, else the payload) (reference §1, §4.5, [S10])."""
        if text is None:
            text = self._quick_reply_title(page_id, psid, payload) or payload
        return await self._quick_reply(
            page_id=page_id,
            psid=psid,
            text=text,
            payload=payload,
            mid=mid,
            at=at,
            standby=standby,
            post=post,
        )

    async def person_shares_email(
        self,
        page_id: str,
        psid: str,
        email: str,
        *,
        mid: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """A `user_email` quick reply tap: text and payload are both the address."""
        return await self._quick_reply(
            page_id=page_id,
            psid=psid,
            text=email,
            payload=email,
            mid=mid,
            at=at,
            standby=False,
            post=post,
        )

    async def person_shares_phone(
        self,
        page_id: str,
        psid: str,
        phone: str,
        *,
        mid: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """A `user_phone_number` quick reply tap: text and payload are both the number."""
        return await self._quick_reply(
            page_id=page_id,
            psid=psid,
            text=phone,
            payload=phone,
            mid=mid,
            at=at,
            standby=False,
            post=post,
        )

    async def _quick_reply(
        self,
        *,
        page_id: str,
        psid: str,
        text: str,
        payload: str,
        mid: str | None,
        at: datetime | None,
        standby: bool,
        post: bool,
    ) -> WebhookEvent:
        page = self.page(page_id)
        stamp = self._stamp(at)
        self._inbound(page, psid, stamp, is_message=True)
        event = events.message_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            mid=mid or self._new_id("m_"),
            text=text,
            quick_reply_payload=payload,
            standby=standby,
        )
        return await self._emit(event, post)

    def _quick_reply_title(self, page_id: str, psid: str, payload: str) -> str | None:
        for sent in reversed(self.sent_to(page_id, psid)):
            for reply in (sent.message or {}).get("quick_replies") or ():
                if reply.get("content_type") == "text" and str(reply.get("payload")) == payload:
                    return str(reply.get("title"))
        return None

    async def person_taps_postback(
        self,
        page_id: str,
        psid: str,
        payload: str,
        *,
        title: str = "Button",
        referral: Mapping[str, Any] | None = None,
        mid: str | None = None,
        at: datetime | None = None,
        standby: bool = False,
        post: bool = True,
    ) -> WebhookEvent:
        """A postback button or menu tap: `messaging_postbacks`, opens the window (§1, [S11])."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        self._inbound(page, psid, stamp)
        event = events.postback_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            mid=mid or self._new_id("m_"),
            title=title,
            payload=payload,
            referral=referral,
            standby=standby,
        )
        return await self._emit(event, post)

    async def person_taps_get_started(
        self,
        page_id: str,
        psid: str | None = None,
        *,
        ref: str | None = None,
        source: str = "SHORTLINK",
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent | None:
        """A new person taps Get Started; None if the Page has no Get Started button (§5, [S16])."""
        page = self.page(page_id)
        payload = page.get_started_payload
        if payload is None:
            return None
        referral = events.referral_body(ref, source=source) if ref is not None else None
        return await self.person_taps_postback(
            page_id,
            psid or self.new_psid(),
            payload,
            title="Get Started",
            referral=referral,
            at=at,
            post=post,
        )

    async def person_clicks_mme_link(
        self,
        page_id: str,
        psid: str | None = None,
        ref: str | None = None,
        *,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent | None:
        """Open `m.me/<page>?ref=<ref>` (reference §5, [S16]).

        Existing thread: `messaging_referrals` (SHORTLINK, OPEN_THREAD), which resets the window.
        New thread (unknown or no PSID): the person must tap Get Started, so a postback with
        `postback.referral` if the Page has the button, else nothing at all (None).
        """
        page = self.page(page_id)
        if psid is not None and psid in page.threads:
            if ref is None:
                return None  # no ref, no referral event: the person just looks at the thread
            stamp = self._stamp(at)
            self._inbound(page, psid, stamp)
            event = events.referral_event(
                page_id, psid, timestamp_ms=stamp, referral=events.referral_body(ref)
            )
            return await self._emit(event, post)
        return await self.person_taps_get_started(page_id, psid, ref=ref, at=at, post=post)

    async def person_clicks_ad(
        self,
        page_id: str,
        psid: str,
        ad_id: str,
        *,
        ref: str | None = None,
        ads_context_data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """An existing thread re-entered from a Click-to-Messenger ad: `messaging_referrals` with
        source ADS (reference §4.5, [S12]). A new thread from an ad: use `person_writes(ad_id=)`."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        self._inbound(page, psid, stamp)
        referral = events.referral_body(
            ref, source="ADS", ad_id=ad_id, ads_context_data=ads_context_data
        )
        event = events.referral_event(page_id, psid, timestamp_ms=stamp, referral=referral)
        return await self._emit(event, post)

    async def person_accepts_one_time_notification(
        self,
        page_id: str,
        psid: str,
        payload: str,
        *,
        token: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """The person taps "Notify Me": a one_time_notif_req opt-in with a single-use token
        (reference §3.1, [T4]). Opt-ins do not open the window (§1)."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        token = token or self._new_id("otn_")
        self.one_time_tokens[token] = OneTimeToken(
            token, page.page_id, psid, payload, from_ms(stamp)
        )
        page.threads.setdefault(psid, ThreadState())
        event = events.one_time_optin_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            payload=payload,
            token=token,
            timestamp_as_string=self.variants.optin_timestamp_as_string,
        )
        return await self._emit(event, post)

    async def person_opts_in_to_notifications(
        self,
        page_id: str,
        psid: str,
        payload: str,
        *,
        title: str | None = None,
        token: str | None = None,
        timezone: str = "UTC",
        frequency: str | None = None,
        token_expiry: datetime | None = None,
        user_token_status: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """Marketing Messages (ex Recurring Notifications) opt-in; does not open the window
        (reference §3.2, [S20])."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        issued = from_ms(stamp)
        token = token or self._new_id("nm_")
        expires = token_expiry or issued + NM_DEFAULT_LIFETIME
        self.notification_tokens[token] = NotificationToken(
            token, page.page_id, psid, payload, title, issued, expires
        )
        page.threads.setdefault(psid, ThreadState())
        event = events.notification_messages_optin_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            payload=payload,
            token=token,
            token_expiry_ms=to_ms(expires),
            timezone=timezone,
            title=title,
            frequency=frequency,
            user_token_status=user_token_status,
            timestamp_as_string=self.variants.optin_timestamp_as_string,
        )
        return await self._emit(event, post)

    async def person_stops_notifications(
        self,
        page_id: str,
        token: str,
        *,
        spelling: StopSpelling | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """The person taps "Stop these messages" (reference §3.2; spelling UNCONFIRMED, §10)."""
        status = spelling or self.variants.stop_spelling
        return await self._notification_status(
            page_id, token, status=status, stopped=True, at=at, post=post
        )

    async def person_resumes_notifications(
        self,
        page_id: str,
        token: str,
        *,
        spelling: StopSpelling | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        stop = spelling or self.variants.stop_spelling
        status = stop.replace("STOP", "RESUME")
        return await self._notification_status(
            page_id, token, status=status, stopped=False, at=at, post=post
        )

    async def _notification_status(
        self,
        page_id: str,
        token: str,
        *,
        status: str,
        stopped: bool,
        at: datetime | None,
        post: bool,
    ) -> WebhookEvent:
        record = self.notification_tokens.get(token)
        if record is None or record.page_id != page_id:
            raise KeyError(f"no notification_messages token {token!r} for Page {page_id}")
        stamp = self._stamp(at)
        record.stopped = stopped
        event = events.notification_messages_optin_event(
            page_id,
            record.psid,
            timestamp_ms=stamp,
            payload=record.payload,
            token=token,
            token_expiry_ms=to_ms(record.expires_at),
            timezone="UTC",
            title=record.title,
            status=status,
            timestamp_as_string=self.variants.optin_timestamp_as_string,
        )
        return await self._emit(event, post)

    async def person_opts_in_via_plugin(
        self,
        page_id: str,
        ref: str,
        *,
        psid: str | None = None,
        user_ref: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """Send to Messenger (`psid`: opens the window, the person messaged through a plugin) or
        Checkbox (`user_ref`: the Page may then send to `recipient.user_ref`) (§1, §4.5, [S13])."""
        page = self.page(page_id)
        if (psid is None) == (user_ref is None):
            raise ValueError("give exactly one of psid and user_ref")
        stamp = self._stamp(at)
        if psid is not None:
            self._inbound(page, psid, stamp)
        else:
            self.user_refs[cast(str, user_ref)] = page.page_id
        event = events.plugin_optin_event(
            page_id,
            timestamp_ms=stamp,
            ref=ref,
            psid=psid,
            user_ref=user_ref,
            timestamp_as_string=self.variants.optin_timestamp_as_string,
        )
        return await self._emit(event, post)

    async def person_reacts(
        self,
        page_id: str,
        psid: str,
        mid: str,
        reaction: str = "love",
        *,
        emoji: str = "\u2764",
        action: Literal["react", "unreact"] = "react",
        at: datetime | None = None,
        standby: bool = False,
        post: bool = True,
    ) -> WebhookEvent:
        """A reaction to a message; reacting opens the window (reference §1), unreacting not."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        if action == "react":
            self._inbound(page, psid, stamp)
        event = events.reaction_event(
            page_id,
            psid,
            timestamp_ms=stamp,
            mid=mid,
            reaction=reaction,
            emoji=emoji,
            action=action,
            standby=standby,
        )
        return await self._emit(event, post)

    async def person_reads(
        self,
        page_id: str,
        psid: str,
        *,
        watermark: datetime | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """`message_reads` up to `watermark` (default: now); never opens the window (§9)."""
        stamp = self._stamp(at)
        mark = to_ms(watermark) if watermark is not None else stamp
        event = events.read_event(page_id, psid, timestamp_ms=stamp, watermark_ms=mark)
        return await self._emit(event, post)

    async def message_delivered(
        self,
        page_id: str,
        psid: str,
        *,
        mids: Sequence[str] | None = None,
        watermark: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """`message_deliveries` up to `watermark` (default: now); never opens the window (§9)."""
        mark = self._stamp(watermark)
        event = events.delivery_event(
            page_id,
            psid,
            watermark_ms=mark,
            mids=mids,
            timestamp_ms=mark if self.variants.delivery_includes_timestamp else None,
        )
        return await self._emit(event, post)

    async def page_inbox_reply(
        self,
        page_id: str,
        psid: str,
        text: str,
        *,
        app_id: str = PAGE_INBOX_APP_ID,
        metadata: str | None = None,
        mid: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """A human answers from the Page inbox: an echo with app_id 263902037430900 (§4.5, [S4]).
        Give another `app_id` for a different app writing to the thread."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        sent = SentMessage(
            page_id=page_id,
            psid=psid,
            recipient_kind="id",
            recipient=psid,
            mid=mid or self._new_id("m_"),
            at=from_ms(stamp),
            messaging_type=None,
            tag=None,
            message={"text": text},
            sender_action=None,
            metadata=metadata,
            app_id=app_id,
        )
        self.sent.append(sent)
        event = self._echo_for(page, sent, psid, stamp, app_id)
        return await self._emit(event, post)

    async def person_comments(
        self,
        page_id: str,
        message: str,
        *,
        psid: str | None = None,
        from_id: str | None = None,
        from_name: str = "Facebook User",
        post_id: str | None = None,
        comment_id: str | None = None,
        parent_id: str | None = None,
        at: datetime | None = None,
        post: bool = True,
    ) -> WebhookEvent:
        """A comment on a Page post: a `feed` change; allows one private reply to `comment_id`
        within 7 days (reference §4.5, §8). It opens the PSID window only with
        `Variants.comment_opens_window`."""
        page = self.page(page_id)
        stamp = self._stamp(at)
        created_s = stamp // 1000
        psid = psid or self.new_psid()
        serial = next(self._counter)
        post_id = post_id or f"{page_id}_{100000 + serial}"
        comment_id = comment_id or f"{post_id.rsplit('_', 1)[-1]}_{200000 + serial}"
        self.comments[comment_id] = Comment(
            comment_id, post_id, page.page_id, psid, from_ms(created_s * 1000)
        )
        if self.variants.comment_opens_window:
            self._inbound(page, psid, stamp)
        event = events.feed_comment_event(
            page_id,
            created_time_s=created_s,
            comment_id=comment_id,
            post_id=post_id,
            parent_id=parent_id or post_id,
            from_id=from_id or str(1_000_000_000_000 + serial),
            from_name=from_name,
            message=message,
        )
        return await self._emit(event, post)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    # Graph accepts "Bearer <token>" and the older "OAuth <token>".
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return header.strip()


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return {}
    if "application/x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        return {key: _decode_param(value) for key, value in pairs}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise invalid_parameter("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid_parameter("The request body must be a JSON object")
    return body


def _decode_param(value: Any) -> Any:
    # Graph takes object parameters as JSON strings in query and form bodies.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def token_marker(location: TokenLocation) -> str:
    """What recorded requests show instead of a token value: `<access_token:header>` etc."""
    return f"<access_token:{location}>"


def _redact_body(body: Any) -> Any:
    if isinstance(body, dict) and "access_token" in body:
        return {**body, "access_token": token_marker("body")}
    return body


def _recipient_id(params: Mapping[str, Any]) -> str | None:
    recipient = params.get("recipient")
    if isinstance(recipient, Mapping):
        value = recipient.get("id")
        return str(value) if value is not None else None
    return None


def _field_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part) for part in value]
    return []


def _subscribed(page: Page, event: WebhookEvent) -> bool:
    field_name = "standby" if event.container == "standby" else event.field
    return field_name in page.subscribed_fields


def _json_answer(body: Any, status_code: int = 200) -> GraphAnswer:
    return GraphAnswer(status_code, encode_body(body))


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
