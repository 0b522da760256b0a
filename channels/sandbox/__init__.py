"""Emulators of outside services for tests and the demo: the Graph API (Messenger Platform).

Built from `reference/messenger-platform.md` only (never from our adapter), so it can catch our
mistakes. Everything below is importable from `channels.sandbox`.

Setup
-----
    clock = FrozenClock(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))     # any () -> aware datetime
    receiver = httpx.AsyncClient(transport=httpx.ASGITransport(app=webhook_app))
    emu = GraphEmulator(clock.now, webhook_client=receiver)          # real UTC time by default
    emu.register_page("PAGE_ID", username="shop", access_token="PAGE_TOKEN", app_id="APP_ID",
                      app_secret="SECRET", webhook_url="http://receiver/webhook",
                      get_started_payload="GET_STARTED")             # None: no Get Started button
    graph = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app),
                              base_url="https://graph.facebook.com")
    async with serve(emu.app) as base_url: ...                       # real uvicorn, free port

`GraphEmulator(clock=None, *, webhook_client=None, variants=Variants(), after_send=AfterSend(),
send_rate_per_second=300, media_rate_per_second=10, sleep=asyncio.sleep, ...)`; the rates apply to
Pages registered afterwards (`emu.page(id).limiter.limit` changes one Page).
`register_page(...)` also takes `webhook_client` (per Page), `subscribed_fields` (default: the
messaging fields + feed; `None` = app not subscribed, so no webhooks until our code subscribes),
`human_agent_enabled=True`, `otn_enabled=True`, `notification_messages_enabled=False`.
`add_person(page_id, psid=None, *, window_opened_at=None, last_message_at=None) -> psid` seeds a
thread without webhooks. `emu.latency_seconds` adds a real sleep before every Graph answer.

Graph API surface (`emu.app`; any `/vNN.N` prefix or none)
---------------------------------------------------------
- `POST /{page_id|me}/messages`: the Send API. Token from `Authorization: Bearer`, or
  `access_token` in the query or body (recorded as `token_locations`). Checks, in order:
  injected faults, token (190), request shape and limits (100, 100/1893061 for retired tags),
  300/s per Page sliding window (613; 10/s for audio/video; every well-formed call counts,
  refused or not), recipient rules: unknown PSID
  100/2018001, 24 h window 10/2018278 (boundary: open at +23:59:59.999, closed at +24:00:00),
  HUMAN_AGENT / CUSTOMER_FEEDBACK 7 days after the person's last *message*, OTN tokens single use
  (`Variants.otn_token_error`, default bare 100), private replies once per comment within 7 days
  (100/2534025). Answers `{"recipient_id", "message_id"}` (or `{"recipient": {...}}`). A success
  posts a `message_echoes` (app_id = owning app, metadata echoed) and a `message_deliveries`
  event, per `emu.after_send = AfterSend(echo, delivery, timing="inline"|"background"|"deferred")`.
- `GET|POST|DELETE /{page_id}/messenger_profile` (`get_started`, `greeting`, `persistent_menu`...);
  `GET|POST|DELETE /{page_id}/subscribed_apps` (`subscribed_fields`). State: `emu.page(id)`.

Inspection
----------
`emu.requests: list[RecordedRequest]` (method, path, query, headers, body, token_locations,
endpoint, page_id, status_code, response, at; token values replaced by `<access_token:WHERE>`),
`emu.requests_to("messages")`, `emu.sent: list[SentMessage]`, `emu.sent_to(page, psid)`,
`emu.deliveries: list[WebhookDelivery]` (url, raw body bytes, headers, status_code, error,
skipped, events), `emu.pending` (deferred after-send events), `emu.thread(page, psid)`,
`emu.is_window_open(page, psid)`, `emu.one_time_tokens`, `emu.notification_tokens`,
`emu.comments`.

Faults (each returns a `Fault`; `times=N`, `duration=timedelta`, `until=datetime` on the emulator
clock, `forever=True`; with none of these it hits the next matching request only; scope with
`endpoint="messages"|"messenger_profile"|"subscribed_apps"|"any"`, `page_id=`, `psid=`)
--------------------------------------------------------------------------------------
`inject_error(code, subcode=None, *, message=None, http_status=400, is_transient=None, ...)`,
`inject_rate_limit(...)` (613), `inject_temporary_failure(...)` (1200),
`inject_http_status(503, *, body=None, content_type="text/plain", ...)`,
`inject_delay(seconds, ...)` (then processes the request: a timed-out send may still go out;
httpx.ASGITransport enforces no timeouts, so test timeouts over `serve()`), `clear_faults()`.

People acting (async; each updates window state like Meta, returns the `WebhookEvent`, and posts
it signed unless `post=False`; `at=` places it in time, for out-of-order tests)
-------------------------------------------------------------------------------
`person_writes(page, psid, text=None, *, attachments, reply_to_mid, ad_id, mid, at, standby)`,
`person_taps_quick_reply(page, psid, payload, *, text=None)`, `person_shares_email(page, psid,
email)`, `person_shares_phone(page, psid, phone)`, `person_taps_postback(page, psid, payload, *,
title, referral)`, `person_taps_get_started(page, psid=None, *, ref=None)`,
`person_clicks_mme_link(page, psid=None, ref=None)` (existing thread: messaging_referrals; new:
Get Started postback with referral, or None if the Page has no Get Started),
`person_clicks_ad(page, psid, ad_id)`, `person_accepts_one_time_notification(page, psid,
payload, *, token=None)`, `person_opts_in_to_notifications(page, psid, payload, *, title, token,
timezone, frequency, token_expiry, user_token_status)`, `person_stops_notifications(page, token,
*, spelling=None)`, `person_resumes_notifications(...)`, `person_opts_in_via_plugin(page, ref, *,
psid=None, user_ref=None)`, `person_reacts(page, psid, mid, reaction="love", *, emoji, action)`,
`person_reads(page, psid, *, watermark=None)`, `message_delivered(page, psid, *, mids=None,
watermark=None)`, `page_inbox_reply(page, psid, text, *, app_id="263902037430900")`,
`person_comments(page, message, *, psid=None, from_id, from_name, post_id, comment_id)`.
Posting: `post_events(events, *, group_by_page=False)` (one body, several entries),
`post_each(events)`, `redeliver(delivery)` (same bytes again), `flush(*, batch=False)`,
`take_pending()`, `verify_webhook(page, verify_token)` (the GET hub.challenge handshake).

Bodies are compact JSON with `ensure_ascii=True` (non-ASCII as \\u escapes), signed
`X-Hub-Signature-256: sha256=<lowercase hex HMAC-SHA256(app secret, raw body)>` plus the legacy
`X-Hub-Signature` (SHA-1). Pure helpers: `signature.encode_body/sign/verify`, `webhook_events.*`
builders and `build_envelope`, `send_validation.parse_send_request`, `messaging_window`.

UNCONFIRMED reference items are switches on `Variants` (response shape, retired-tag subcode, OTN
reuse error, STOP spelling, optin timestamp as string, delivery mids/timestamp, 7-day
Click-to-Messenger window, comments opening the window, quick-reply payload limit, echo app_id
type, escaped slashes).

Standalone: `python -m channels.sandbox --host 127.0.0.1 --port N [--page-id ID --webhook-url URL
--page-token T --app-secret S --get-started PAYLOAD]`, driven over HTTP at `/_emulator/`:
`GET state|requests|sent|deliveries|faults`, `POST pages|people|faults|flush`,
`POST actions/<writes|taps_quick_reply|shares_email|clicks_mme_link|...>` (JSON keyword
arguments, datetimes as ISO 8601), `DELETE faults`. `serve_in_thread(app)` for sync callers.
"""

from channels.sandbox.emulator import AfterSend, GraphEmulator, system_clock
from channels.sandbox.faults import Fault
from channels.sandbox.graph_errors import GraphError
from channels.sandbox.records import (
    Page,
    RecordedRequest,
    SentMessage,
    WebhookDelivery,
)
from channels.sandbox.server import serve, serve_in_thread
from channels.sandbox.variants import Variants
from channels.sandbox.webhook_events import PAGE_INBOX_APP_ID, WebhookEvent

__all__ = [
    "PAGE_INBOX_APP_ID",
    "AfterSend",
    "Fault",
    "GraphEmulator",
    "GraphError",
    "Page",
    "RecordedRequest",
    "SentMessage",
    "Variants",
    "WebhookDelivery",
    "WebhookEvent",
    "serve",
    "serve_in_thread",
    "system_clock",
]
