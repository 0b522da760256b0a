"""`/v1/forms`: capture forms (popup, minigame, embedded) and their stats (DESIGN section 10)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, StringConstraints, field_validator

from orchestrator.api.capture import GuardDep, public_urls
from orchestrator.api.deps import (
    IdempotencyDep,
    NowDep,
    ResourcesDep,
    SessionDep,
    WorkspaceIdDep,
)
from orchestrator.campaigns.durations import DURATION_PATTERN
from orchestrator.capture import counters, forms
from orchestrator.capture import spins as capture_spins
from orchestrator.capture.origins import OriginInvalid, normalize_allowed
from orchestrator.schemas import InputModel, ListPage, OutputModel

router = APIRouter(prefix="/v1/forms", tags=["forms"])

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Kind = Literal["popup", "minigame", "embedded"]
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


class ConsentIn(InputModel):
    text: str = Field(min_length=1, max_length=5000)
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class FrequencyIn(InputModel):
    """Show the popup at most `times` times per `per` to one visitor (the widget counts)."""

    times: int = Field(ge=1, le=1000)
    per: Duration


class TriggersIn(InputModel):
    """When the popup opens: after `delay`, at `scroll_percent` of the page, on exit intent
    (whichever comes first; none set means at once)."""

    delay: Duration | None = None
    scroll_percent: int | None = Field(default=None, ge=0, le=100)
    exit_intent: bool = False
    frequency: FrequencyIn | None = None


class LookIn(InputModel):
    """Texts and style the widget shows; it renders text, never HTML."""

    title: str | None = Field(default=None, max_length=200)
    body: str | None = Field(default=None, max_length=2000)
    button_label: str | None = Field(default=None, max_length=60)
    success_title: str | None = Field(default=None, max_length=200)
    success_body: str | None = Field(default=None, max_length=2000)
    messenger_button_label: str | None = Field(default=None, max_length=60)
    image_url: str | None = Field(default=None, max_length=2000, pattern=r"^https://\S+$")
    primary_color: str | None = Field(default=None, pattern=r"^#[0-9A-Fa-f]{6}$")
    position: Literal["center", "bottom_right", "bottom_left", "top"] | None = None


class PrizeIn(InputModel):
    """A wheel segment. `stock` null is unlimited; `codes` (write-only) are added to the prize's
    pool, each given out once; `losing` marks a "better luck next time" segment."""

    id: str | None = Field(default=None, max_length=32)
    label: str = Field(min_length=1, max_length=100)
    weight: int = Field(ge=0, le=1_000_000)
    stock: int | None = Field(default=None, ge=0)
    losing: bool = False
    codes: list[Code] = Field(default_factory=list, max_length=100_000)

    def as_input(self) -> forms.PrizeInput:
        return forms.PrizeInput(
            id=self.id, label=self.label, weight=self.weight, stock=self.stock,
            losing=self.losing, codes=tuple(self.codes),
        )  # fmt: skip


class WheelIn(InputModel):
    prizes: list[PrizeIn] = Field(min_length=1, max_length=24)


def _origins(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    normalized: list[str] = []
    for value in values:
        try:
            origin = normalize_allowed(value)
        except OriginInvalid as exc:
            raise ValueError(f"{value!r}: {exc}") from exc
        if origin not in normalized:
            normalized.append(origin)
    return normalized


def _locale(value: str | None) -> str | None:
    if value is not None and not _LOCALE.match(value):
        raise ValueError("not a locale such as 'vi' or 'en_US'")
    return value


class _FormFields(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_origins: list[str] | None = Field(default=None, min_length=1, max_length=50)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    consent: ConsentIn | None = None
    double_opt_in: bool | None = None
    page_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^\d+$")
    locale: str | None = Field(default=None, max_length=35)
    triggers: TriggersIn | None = None
    look: LookIn | None = None
    wheel: WheelIn | None = None

    _check_origins = field_validator("allowed_origins")(_origins)
    _check_locale = field_validator("locale")(_locale)

    def columns(self, fields: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in ("name", "allowed_origins", "tags", "double_opt_in", "page_id", "locale"):
            if name in fields:
                values[name] = getattr(self, name)
        if "consent" in fields and self.consent is not None:
            values["consent_text"] = self.consent.text
            values["consent_version"] = self.consent.version
        if "triggers" in fields:
            values["triggers"] = (self.triggers or TriggersIn()).model_dump(mode="json")
        if "look" in fields:
            values["look"] = (self.look or LookIn()).model_dump(mode="json", exclude_none=True)
        return values

    def prizes(self) -> list[forms.PrizeInput] | None:
        return [p.as_input() for p in self.wheel.prizes] if self.wheel is not None else None


class FormCreate(_FormFields):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    allowed_origins: list[str] = Field(min_length=1, max_length=50)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    consent: ConsentIn
    double_opt_in: bool = True
    triggers: TriggersIn = Field(default_factory=TriggersIn)
    look: LookIn = Field(default_factory=LookIn)


class FormUpdate(_FormFields):
    kind: Kind | None = None

    @field_validator(
        "name", "allowed_origins", "tags", "consent", "double_opt_in", "triggers", "look",
        "wheel", "kind",
    )  # fmt: skip
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value


class ConsentPublic(OutputModel):
    text: str
    version: str


class PrizePublic(OutputModel):
    id: str
    label: str
    weight: int
    stock: int | None
    awarded: int
    losing: bool
    codes_total: int
    codes_left: int


class WheelPublic(OutputModel):
    prizes: list[PrizePublic]


class FormPublic(OutputModel):
    id: str
    name: str
    kind: Kind
    allowed_origins: list[str]
    tags: list[str]
    consent: ConsentPublic
    consent_versions: list[str]
    double_opt_in: bool
    page_id: str | None
    locale: str | None
    triggers: dict[str, Any]
    look: dict[str, Any]
    wheel: WheelPublic | None
    widget_url: str
    token_url: str
    capture_url: str
    created_at: datetime
    updated_at: datetime


class FormStats(OutputModel):
    form_id: str
    captured: int
    duplicates: int
    confirmed: int
    rejected: dict[str, int]
    spins: dict[str, int] | None
    prizes: list[PrizePublic] | None


def _public(found: forms.FormView, public_url: str) -> FormPublic:
    form = found.form
    urls = public_urls(public_url, form.id)
    return FormPublic(
        id=form.id,
        name=form.name,
        kind=form.kind,
        allowed_origins=list(form.allowed_origins or []),
        tags=list(form.tags or []),
        consent=ConsentPublic(text=form.consent_text, version=form.consent_version),
        consent_versions=list((form.consent_texts or {}).keys()),
        double_opt_in=form.double_opt_in,
        page_id=form.page_id,
        locale=form.locale,
        triggers=dict(form.triggers or {}),
        look=dict(form.look or {}),
        wheel=WheelPublic(
            prizes=[PrizePublic.model_validate(p, from_attributes=True) for p in found.prizes]
        )
        if form.kind == "minigame"
        else None,
        widget_url=urls.widget,
        token_url=urls.token,
        capture_url=urls.capture,
        created_at=form.created_at,
        updated_at=form.updated_at,
    )


@router.post("", status_code=201, response_model=FormPublic)
async def create_form(
    body: FormCreate,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """Create a form; the answer names the widget script to embed and the public endpoints."""
    if idem.replayed is not None:
        return idem.replayed
    values = body.columns(body.model_fields_set | {"triggers", "look", "tags", "double_opt_in"})
    values["kind"] = body.kind
    found = await forms.create_form(
        session,
        workspace_id=workspace_id,
        values=values,
        prizes=body.prizes() or [],
        now=now,
    )
    return await idem.respond(201, _public(found, resources.settings.public_url))


@router.get("", response_model=ListPage[FormPublic])
async def list_forms(
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListPage[FormPublic]:
    views, next_cursor = await forms.list_forms(
        session, workspace_id=workspace_id, limit=limit, cursor=cursor
    )
    public_url = resources.settings.public_url
    return ListPage[FormPublic](
        data=[_public(v, public_url) for v in views], next_cursor=next_cursor
    )


@router.get("/{form_id}", response_model=FormPublic)
async def read_form(
    form_id: str, session: SessionDep, resources: ResourcesDep, workspace_id: WorkspaceIdDep
) -> FormPublic:
    form = await forms.get_form(session, workspace_id=workspace_id, form_id=form_id)
    return _public(await forms.view(session, form), resources.settings.public_url)


@router.patch("/{form_id}", response_model=FormPublic)
async def patch_form(
    form_id: str,
    body: FormUpdate,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> FormPublic:
    """Given fields replace. A new consent text needs a new `consent.version`; `wheel.prizes` is
    the whole wheel in order (entries with an `id` update that prize, others are added, prizes
    left out are retired; `codes` are added to a prize's pool, never removed)."""
    changes = body.columns(body.model_fields_set)
    if body.kind is not None:
        changes["kind"] = body.kind
    found = await forms.update_form(
        session,
        workspace_id=workspace_id,
        form_id=form_id,
        changes=changes,
        prizes=body.prizes(),
        now=now,
    )
    return _public(found, resources.settings.public_url)


@router.delete("/{form_id}", status_code=204)
async def delete_form(
    form_id: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> Response:
    """The form's public endpoints stop answering; its ledger rows, spins and stats remain."""
    await forms.delete_form(session, workspace_id=workspace_id, form_id=form_id, now=now)
    return Response(status_code=204)


@router.get("/{form_id}/stats", response_model=FormStats)
async def form_stats(
    form_id: str,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    guard: GuardDep,
    now: NowDep,
) -> FormStats:
    """Outcomes of the form's public endpoints: `captured` (accepted, something new written),
    `duplicates` (accepted, nothing new: same address inside the cooling period), `confirmed`
    (double opt-in confirmations), `rejected` by reason; and the wheel's spins and stock.
    Rejections are counted per API process and written every few seconds."""
    form = await forms.get_form(session, workspace_id=workspace_id, form_id=form_id)
    await counters.flush(session, guard.tally, now=now)
    counts = await counters.read(session, form_id=form.id)
    spins: dict[str, int] | None = None
    prizes: list[PrizePublic] | None = None
    if form.kind == "minigame":
        spins = await capture_spins.counts(session, form_id=form.id)
        prizes = [
            PrizePublic.model_validate(p, from_attributes=True)
            for p in await forms.prizes_of(session, form.id)
        ]
    return FormStats(
        form_id=form.id,
        captured=counts.get(counters.CAPTURED, 0),
        duplicates=counts.get(counters.DUPLICATE, 0),
        confirmed=counts.get(counters.CONFIRMED, 0),
        rejected={
            outcome.removeprefix(counters.REJECTED): count
            for outcome, count in sorted(counts.items())
            if outcome.startswith(counters.REJECTED)
        },
        spins=spins,
        prizes=prizes,
    )
