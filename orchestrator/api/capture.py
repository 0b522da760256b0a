"""Keyless capture endpoints (DESIGN sections 9 and 10), built for hostile callers:

    GET     /f/{form_id}/widget.js   the widget script with the form's public URLs
    GET     /f/{form_id}/token       a signed form token and the form's public config
    POST    /capture/{form_id}       an address typed into the form (JSON or form-encoded)
    OPTIONS on both of the above     CORS preflight, answered here for allowed origins only
    GET     /c/{token}               the double opt-in page with its button
    POST    /c/{token}               confirms

Checks on a capture, in order: the form exists; Origin/Referer allowed (403); rate limits per
client IP and per form (429 with Retry-After); body size (413); media type (415); body parses
(400); honeypot (400); form token present, genuine, old enough and not expired (400); fields
(422 naming them); token not used before (409). A refused request stores nothing but a count.

The token, preflight and capture endpoints read the form from a cache of a few seconds
(`form_cache.py`); a popup or embedded form's capture is answered once it is in the capture
inbox, which the `capture.apply` job applies (`inbox.py`); the lucky wheel's is applied at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator import contacts, rendering
from orchestrator.api.deps import NowDep, ResourcesDep, SessionDep
from orchestrator.api.problems import field_path, problem_response
from orchestrator.capture import capture as capture_service
from orchestrator.capture import confirm as confirm_service
from orchestrator.capture import counters, forms, origins, pages
from orchestrator.capture.client_ip import client_ip
from orchestrator.capture.form_cache import FormCache, PublicForm
from orchestrator.capture.guard import CaptureGuard, RejectionTally
from orchestrator.capture.inbox import InboxWriter
from orchestrator.capture.tokens import (
    FormTokenProblem,
    FormTokenRejected,
    make_form_token,
    read_form_token,
)
from orchestrator.db import transaction
from orchestrator.errors import (
    BadRequest,
    FieldError,
    Forbidden,
    MalformedBody,
    OutreachError,
    PayloadTooLarge,
    TooManyRequests,
    UnsupportedMediaType,
    ValidationFailed,
)
from orchestrator.links import LinkExpired, LinkInvalid
from orchestrator.rendering.layouts import TEMPLATES_DIR
from orchestrator.resources import Resources

router = APIRouter(tags=["capture (public)"])

WIDGET_FILE = TEMPLATES_DIR / "widget" / "widget.js"
WIDGET_CONFIG_MARKER = "/*__OUTREACH_CONFIG__*/null"
_NO_STORE = {"Cache-Control": "no-store"}
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class OriginNotAllowed(Forbidden):
    slug = "origin-not-allowed"
    title = "This site may not use the form"


class FormTokenRefused(BadRequest):
    slug = "form-token-refused"
    title = "The form token was refused; fetch a new one"


class CaptureRefused(BadRequest):
    slug = "capture-refused"
    title = "The submission was refused"


@dataclass(frozen=True)
class PublicUrls:
    widget: str
    token: str
    capture: str


def public_urls(public_url: str, form_id: str) -> PublicUrls:
    base = public_url.rstrip("/")
    return PublicUrls(
        widget=f"{base}/f/{form_id}/widget.js",
        token=f"{base}/f/{form_id}/token",
        capture=f"{base}/capture/{form_id}",
    )


async def get_guard(request: Request, resources: ResourcesDep) -> CaptureGuard:
    """One guard per application (its rate windows and tallies live in process memory)."""
    guard: CaptureGuard | None = getattr(request.app.state, "capture_guard", None)
    if guard is None:
        guard = CaptureGuard.of(resources.settings)
        request.app.state.capture_guard = guard
    return guard


GuardDep = Annotated[CaptureGuard, Depends(get_guard)]


@dataclass(frozen=True)
class CapturePath:
    """What `POST /capture` uses instead of a transaction per request (one per application)."""

    forms: FormCache
    inbox: InboxWriter


async def get_capture_path(request: Request, resources: ResourcesDep) -> CapturePath:
    path: CapturePath | None = getattr(request.app.state, "capture_path", None)
    if path is None:
        path = CapturePath(FormCache(resources.sessions), InboxWriter(resources.sessions))
        request.app.state.capture_path = path
    return path


CapturePathDep = Annotated[CapturePath, Depends(get_capture_path)]


def _client(request: Request, guard: CaptureGuard) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), guard.proxies) or "unknown"


class _Gate:
    """The form and the request's origin, plus how to refuse (count, then problem+json)."""

    def __init__(
        self,
        request: Request,
        public: PublicForm,
        guard: CaptureGuard,
        now: datetime,
        flush: Callable[[RejectionTally], Awaitable[None]],
    ) -> None:
        self.request = request
        self.public = public
        self.form = public.form
        self.guard = guard
        self.now = now
        self.flush = flush
        self.origin = origins.check(
            request.headers.get("origin"), request.headers.get("referer"), self.form.allowed_origins
        )
        self.ip = _client(request, guard)

    async def refuse(self, reason: str, error: OutreachError) -> JSONResponse:
        tally = self.guard.tally
        tally.add(self.form.workspace_id, self.form.id, counters.REJECTED + reason)
        await self.flush_if_due()
        response = problem_response(error, self.request.url.path)
        if not self.origin.refused:
            response.headers.update(origins.cors_headers(self.origin))
        response.headers.update(_NO_STORE)
        return response

    async def flush_if_due(self) -> None:
        if self.guard.tally.due(self.now, self.guard.settings.flush_every):
            await self.flush(self.guard.tally)

    async def limited(self, *groups: tuple[str, str]) -> JSONResponse | None:
        for group, key in groups:
            wait = self.guard.rate_limits.hit(group, key)
            if wait is not None:
                return await self.refuse(
                    "rate_limited",
                    TooManyRequests(
                        f"Too many requests; retry in {wait} seconds",
                        headers={"Retry-After": str(wait)},
                    ),
                )
        return None

    def answer(self, payload: Any, status_code: int = 200) -> JSONResponse:
        headers = {**origins.cors_headers(self.origin), **_NO_STORE}
        return JSONResponse(payload, status_code=status_code, headers=headers)


async def _gate(
    request: Request,
    form_id: str,
    resources: Resources,
    guard: CaptureGuard,
    path: CapturePath,
    now: datetime,
) -> tuple[_Gate, JSONResponse | None]:
    """The form from the form cache: the public endpoints open no transaction unless they write
    (refusal counts now and then, captures through the inbox writer) or read a wheel."""
    public = await path.forms.get(form_id)

    async def flush(tally: RejectionTally) -> None:
        async with transaction(resources.sessions) as session:
            await counters.flush(session, tally, now=now)

    gate = _Gate(request, public, guard, now, flush)
    if gate.origin.refused:
        return gate, await gate.refuse(
            "origin", OriginNotAllowed("The page's origin is not allowed to use this form")
        )
    return gate, None


# -- the widget script ----------------------------------------------------------------------------


@cache
def _widget_source() -> str:
    return WIDGET_FILE.read_text(encoding="utf-8")


def _js_literal(value: Any) -> str:
    # JSON is JavaScript, except U+2028/U+2029 in older engines; `<` is escaped so the text can
    # never close a surrounding <script> if someone inlines it.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@router.get("/f/{form_id}/widget.js", response_class=Response)
async def widget_script(
    form_id: str, request: Request, session: SessionDep, resources: ResourcesDep
) -> Response:
    """The widget script with this form's public URLs in it; nothing secret. Cached briefly by
    browsers and CDNs, revalidated with its ETag."""
    form = await forms.get_public_form(session, form_id)
    urls = public_urls(resources.settings.public_url, form.id)
    config = {"form_id": form.id, "token_url": urls.token, "capture_url": urls.capture}
    body = _widget_source().replace(WIDGET_CONFIG_MARKER, _js_literal(config), 1).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": "public, max-age=300",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Any site may load the script (it is public); it can do nothing without an allowed
        # origin, which the token and capture endpoints check.
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Access-Control-Allow-Origin": "*",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


# -- the form token -------------------------------------------------------------------------------


class FormTokenOut(BaseModel):
    token: str
    issued_at: datetime
    expires_at: datetime
    min_fill_seconds: int
    form: dict[str, Any]


@router.get("/f/{form_id}/token", response_model=FormTokenOut)
async def form_token(
    form_id: str,
    request: Request,
    resources: ResourcesDep,
    guard: GuardDep,
    path: CapturePathDep,
    now: NowDep,
) -> Response:
    """A signed form token (its issue time inside) and what the widget shows: kind, triggers,
    consent text and version, look, the wheel's labels. Never weights, stock or codes."""
    gate, refused = await _gate(request, form_id, resources, guard, path, now)
    if refused is not None:
        return refused
    limited = await gate.limited(("token:ip", gate.ip))
    if limited is not None:
        return limited
    form = gate.form
    settings = guard.settings
    token = make_form_token(
        resources.keyring,
        workspace_id=form.workspace_id,
        form_id=form.id,
        consent_version=form.consent_version,
        nonce=secrets.token_urlsafe(8),
        now=now,
    )
    prizes = []
    if form.kind == "minigame":
        async with transaction(resources.sessions) as session:
            prizes = await forms.prizes_of(session, form.id)
    config = forms.public_config(
        form,
        prizes,
        capture_url=public_urls(settings.public_url, form.id).capture,
        has_messenger=form.page_id is not None,
    )
    out = FormTokenOut(
        token=token,
        issued_at=now,
        expires_at=now + settings.token_max_age,
        min_fill_seconds=int(settings.min_fill.total_seconds()),
        form=config,
    )
    return gate.answer(out.model_dump(mode="json"))


async def _preflight(
    request: Request,
    form_id: str,
    resources: Resources,
    guard: CaptureGuard,
    path: CapturePath,
    now: datetime,
    methods: str,
) -> Response:
    gate, refused = await _gate(request, form_id, resources, guard, path, now)
    if refused is not None:
        return refused
    headers = (
        origins.preflight_headers(gate.origin, methods)
        if gate.origin.verdict is origins.Verdict.ALLOWED
        else {"Allow": methods}
    )
    return Response(status_code=204, headers=headers)


@router.options("/f/{form_id}/token", status_code=204, response_class=Response)
async def form_token_preflight(
    form_id: str,
    request: Request,
    resources: ResourcesDep,
    guard: GuardDep,
    path: CapturePathDep,
    now: NowDep,
) -> Response:
    return await _preflight(request, form_id, resources, guard, path, now, "GET, OPTIONS")


# -- the capture ----------------------------------------------------------------------------------


class CaptureIn(BaseModel):
    """Unknown fields are ignored here (unlike `/v1`): the widget may send more than we read."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    email: str = Field(min_length=1, max_length=320)
    consent: bool
    token: str = Field(min_length=1, max_length=1000)
    name: str | None = Field(default=None, max_length=300)
    locale: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"
    )

    @field_validator("consent")
    @classmethod
    def _given(cls, value: bool) -> bool:
        if not value:
            raise ValueError("consent is required: the person must accept the consent text")
        return value


class SpinOut(BaseModel):
    segment_id: str | None
    label: str | None
    status: str
    code: str | None


class CaptureOut(BaseModel):
    status: str
    double_opt_in: bool
    messenger_url: str | None
    spin: SpinOut | None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (declared or not)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(content_type: str, body: bytes) -> dict[str, Any]:
    """Raises `UnsupportedMediaType` or `MalformedBody`."""
    media = content_type.partition(";")[0].strip().lower()
    try:
        if media == "application/json":
            data = json.loads(body.decode("utf-8")) if body else None
            if not isinstance(data, dict):
                raise MalformedBody(
                    "The body must be a JSON object",
                    errors=[FieldError("body", "not a JSON object", "json_invalid")],
                )
            return data
        if media == "application/x-www-form-urlencoded":
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
            return {name: values[0] for name, values in fields.items()}
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise MalformedBody(
            "The body does not parse", errors=[FieldError("body", "does not parse", "json_invalid")]
        ) from exc
    raise UnsupportedMediaType("Send application/json or application/x-www-form-urlencoded")


def _fields(data: dict[str, Any]) -> CaptureIn:
    try:
        return CaptureIn.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(
                field_path(list(item["loc"])),
                str(item["msg"]).removeprefix("Value error, "),
                str(item["type"]),
            )
            for item in exc.errors()
        ]
        raise ValidationFailed(
            "; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors
        ) from exc


@router.post("/capture/{form_id}", response_model=CaptureOut)
async def capture(
    form_id: str,
    request: Request,
    resources: ResourcesDep,
    guard: GuardDep,
    path: CapturePathDep,
    now: NowDep,
) -> Response:
    """An address typed into the form. The answer is what the page shows next, and it is the
    same whether the address was known or not.

    No transaction of its own: the form comes from the form cache, a popup or embedded form's
    capture goes to the inbox with the next group commit, and refusals are counted in memory
    (the lucky wheel, which must read the database to answer, opens one)."""
    gate, refused = await _gate(request, form_id, resources, guard, path, now)
    if refused is not None:
        return refused
    limited = await gate.limited(("capture:ip", gate.ip), ("capture:form", gate.form.id))
    if limited is not None:
        return limited
    settings = guard.settings
    body = await _read_limited(request, settings.max_body_bytes)
    if body is None:
        return await gate.refuse(
            "payload_too_large",
            PayloadTooLarge(f"The request body is larger than {settings.max_body_bytes} bytes"),
        )
    try:
        data = _parse(request.headers.get("content-type", ""), body)
    except UnsupportedMediaType as exc:
        return await gate.refuse("unsupported_media_type", exc)
    except MalformedBody as exc:
        return await gate.refuse("malformed_body", exc)
    if str(data.get(forms.HONEYPOT_FIELD) or "").strip():
        return await gate.refuse("honeypot", CaptureRefused("The submission was refused"))
    form = gate.form
    raw_token = data.get("token")
    try:
        form_token = read_form_token(
            resources.keyring,
            raw_token if isinstance(raw_token, str) else None,
            workspace_id=form.workspace_id,
            form_id=form.id,
            min_fill=settings.min_fill,
            max_age=settings.token_max_age,
            now=now,
        )
    except FormTokenRejected as exc:
        extra: dict[str, Any] = {"reason": exc.problem.value}
        headers: dict[str, str] = {}
        if exc.problem is FormTokenProblem.TOO_FRESH and exc.wait is not None:
            extra["retry_after_seconds"] = max(1, int(exc.wait.total_seconds() + 0.999))
            headers["Retry-After"] = str(extra["retry_after_seconds"])
        return await gate.refuse(
            exc.problem.value,
            FormTokenRefused(_TOKEN_DETAIL[exc.problem], extra=extra, headers=headers),
        )
    try:
        fields = _fields(data)
        address = contacts.normalize_or_fail(fields.email)
    except ValidationFailed as exc:
        return await gate.refuse("invalid_fields", exc)
    user_agent = request.headers.get("user-agent")
    submission = capture_service.Submission(
        address=address,
        consent_version=form_token.consent_version,
        name=fields.name,
        locale=fields.locale,
        ip=gate.ip if gate.ip != "unknown" else None,
        user_agent=user_agent[:500] if user_agent else None,
    )
    try:
        if form.kind == "minigame":
            # The wheel's answer depends on what the address drew before: all of it now.
            async with transaction(resources.sessions) as session:
                answer = await capture_service.capture(
                    session,
                    resources.keyring,
                    form=await forms.get_public_form(session, form.id),
                    token=fields.token,
                    submission=submission,
                    settings=settings,
                    now=now,
                )
        else:
            answer = await _accept(
                path.inbox, resources, gate.public, fields.token, submission, now
            )
    except capture_service.TokenReplayed as exc:
        return await gate.refuse("token_replayed", exc)
    await gate.flush_if_due()
    out = CaptureOut(
        status=answer.status,
        double_opt_in=answer.double_opt_in,
        messenger_url=answer.messenger_url,
        spin=SpinOut(**{k: v for k, v in asdict(answer.spin).items() if k != "id"})
        if answer.spin
        else None,
    )
    return gate.answer(out.model_dump(mode="json"))


async def _accept(
    writer: InboxWriter,
    resources: Resources,
    public: PublicForm,
    token: str,
    submission: capture_service.Submission,
    now: datetime,
) -> capture_service.CaptureAnswer:
    """Answer from the form alone, once the capture is in the inbox; the `capture.apply` job
    does the rest (`inbox.py`)."""
    form = public.form
    contact_id = await writer.accept(form=form, token=token, submission=submission, now=now)
    return capture_service.CaptureAnswer(
        status="pending_confirmation" if form.double_opt_in else "subscribed",
        double_opt_in=form.double_opt_in,
        messenger_url=capture_service.messenger_link(
            resources.keyring,
            workspace_id=form.workspace_id,
            username=public.page_username,
            contact_id=contact_id,
            now=now,
        ),
        spin=None,
    )


_TOKEN_DETAIL = {
    FormTokenProblem.MISSING: "The form token is missing",
    FormTokenProblem.INVALID: "The form token is not valid for this form",
    FormTokenProblem.EXPIRED: "The form token has expired",
    FormTokenProblem.TOO_FRESH: "The form was sent too soon after it was shown",
}


@router.options("/capture/{form_id}", status_code=204, response_class=Response)
async def capture_preflight(
    form_id: str,
    request: Request,
    resources: ResourcesDep,
    guard: GuardDep,
    path: CapturePathDep,
    now: NowDep,
) -> Response:
    return await _preflight(request, form_id, resources, guard, path, now, "POST, OPTIONS")


# -- double opt-in confirmation -------------------------------------------------------------------


def _link_refused(exc: Exception) -> HTMLResponse:
    expired = isinstance(exc, LinkExpired)
    return HTMLResponse(
        rendering.render_link_error_page(problem="expired" if expired else "invalid"),
        status_code=410 if expired else 400,
        headers=_PAGE_HEADERS,
    )


def _confirm_limited(request: Request, guard: CaptureGuard) -> Response | None:
    """The confirmation page is public too: per client IP, at the form-token rate. A token is
    signed, so a flood costs us a signature check each, but it still gets 429 early."""
    wait = guard.rate_limits.hit("confirm:ip", _client(request, guard))
    if wait is None:
        return None
    error = TooManyRequests(
        f"Too many requests; retry in {wait} seconds", headers={"Retry-After": str(wait)}
    )
    response = problem_response(error, request.url.path)
    response.headers.update(_PAGE_HEADERS)
    return response


@router.get("/c/{token}", response_class=HTMLResponse)
async def confirm_page(
    token: str,
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    guard: GuardDep,
    now: NowDep,
) -> Response:
    """One button; nothing changes until it is pressed (mail scanners follow GET links)."""
    if (refused := _confirm_limited(request, guard)) is not None:
        return refused
    try:
        found = await confirm_service.pending(session, resources.keyring, token=token, now=now)
    except (LinkInvalid, LinkExpired) as exc:
        return _link_refused(exc)
    return HTMLResponse(
        pages.render_confirm_page(
            action_url=f"/c/{token}",
            address_hint=confirm_service.mask(found.identity.address),
            sender_name=found.sender_name,
        ),
        headers=_PAGE_HEADERS,
    )


@router.post("/c/{token}", response_class=HTMLResponse)
async def confirm(
    token: str,
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    guard: GuardDep,
    now: NowDep,
) -> Response:
    """Confirms the subscription; pressing again shows the same page and changes nothing."""
    if (refused := _confirm_limited(request, guard)) is not None:
        return refused
    user_agent = request.headers.get("user-agent")
    try:
        done = await confirm_service.confirm(
            session,
            resources.keyring,
            token=token,
            ip=_client(request, guard),
            user_agent=user_agent[:500] if user_agent else None,
            now=now,
        )
    except (LinkInvalid, LinkExpired) as exc:
        return _link_refused(exc)
    return HTMLResponse(
        pages.render_confirmed_page(
            address_hint=done.address_hint,
            sender_name=done.sender_name,
            spin=done.spin,
            messenger_url=done.messenger_url,
        ),
        headers=_PAGE_HEADERS,
    )
