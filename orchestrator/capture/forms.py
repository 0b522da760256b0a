"""Capture forms and their lucky-wheel prizes: the service behind `/v1/forms`.

Services never commit. A form is never removed: deleting it stops its public endpoints and hides
it from the API, while the ledger rows, spins and counters that name it stay meaningful.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from orchestrator import pages
from orchestrator.campaigns.durations import parse_duration
from orchestrator.capture.wheel import Segment
from orchestrator.db import insert_ignoring_conflicts
from orchestrator.errors import FieldError, NotFound, ValidationFailed
from orchestrator.ids import new_id
from orchestrator.models import CaptureForm, CapturePrize, CapturePrizeCode, table_of

HONEYPOT_FIELD = "website"


class FormNotFound(NotFound):
    slug = "form-not-found"
    title = "Form not found"


@dataclass(frozen=True)
class PrizeInput:
    label: str
    weight: int
    stock: int | None = None
    losing: bool = False
    codes: tuple[str, ...] = ()
    id: str | None = None


@dataclass(frozen=True)
class PrizeView:
    id: str
    label: str
    weight: int
    stock: int | None
    awarded: int
    losing: bool
    codes_total: int
    codes_left: int

    @property
    def available(self) -> bool:
        """Whether the wheel may still land here: stock left, and a code left if it has codes."""
        if self.losing:
            return True
        if self.stock is not None and self.awarded >= self.stock:
            return False
        return self.codes_total == 0 or self.codes_left > 0

    def segment(self) -> Segment:
        return Segment(self.id, self.label, self.weight, self.available)


@dataclass(frozen=True)
class FormView:
    form: CaptureForm
    prizes: list[PrizeView]


# -- reading ---------------------------------------------------------------------------------


async def get_form(session: AsyncSession, *, workspace_id: str, form_id: str) -> CaptureForm:
    form = await session.get(CaptureForm, form_id)
    if form is None or form.workspace_id != workspace_id or form.deleted_at is not None:
        raise FormNotFound(f"No form {form_id!r}")
    return form


class _Changes:
    """How many times this process changed a form: the public form cache (`form_cache.py`)
    drops what it read before a change made here at once, and what other processes changed
    after its time to live."""

    count = 0


def changed() -> int:
    return _Changes.count


def _note_change() -> None:
    _Changes.count += 1


async def get_public_form(session: AsyncSession, form_id: str) -> CaptureForm:
    """For the keyless endpoints: the form id names its workspace."""
    form = await session.get(CaptureForm, form_id) if form_id.startswith("fm_") else None
    if form is None or form.deleted_at is not None:
        raise FormNotFound(f"No form {form_id!r}")
    return form


async def prizes_of(session: AsyncSession, form_id: str) -> list[PrizeView]:
    """The active prizes in wheel order, with their code counts."""
    prizes = table_of(CapturePrize)
    codes = table_of(CapturePrizeCode)
    code_counts = (
        sa.select(
            codes.c.prize_id,
            sa.func.count().label("total"),
            sa.func.count(codes.c.spin_id).label("given"),
        )
        .group_by(codes.c.prize_id)
        .subquery()
    )
    rows = await session.execute(
        sa.select(prizes, code_counts.c.total, code_counts.c.given)
        .select_from(prizes.outerjoin(code_counts, code_counts.c.prize_id == prizes.c.id))
        .where(prizes.c.form_id == form_id, prizes.c.active.is_(True))
        .order_by(prizes.c.position, prizes.c.id)
    )
    return [
        PrizeView(
            id=row.id,
            label=row.label,
            weight=row.weight,
            stock=row.stock,
            awarded=row.awarded,
            losing=row.losing,
            codes_total=int(row.total or 0),
            codes_left=int(row.total or 0) - int(row.given or 0),
        )
        for row in rows
    ]


async def view(session: AsyncSession, form: CaptureForm) -> FormView:
    # Only a minigame has a wheel: the other kinds are refused prizes, so no query for them.
    prizes = await prizes_of(session, form.id) if form.kind == "minigame" else []
    return FormView(form, prizes)


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if not decoded.startswith("fm_"):
        raise ValidationFailed(
            "The cursor is not one this API returned",
            errors=[FieldError("query.cursor", "invalid cursor")],
        )
    return decoded


async def list_forms(
    session: AsyncSession, *, workspace_id: str, limit: int, cursor: str | None
) -> tuple[list[FormView], str | None]:
    query = (
        sa.select(CaptureForm)
        .where(col(CaptureForm.workspace_id) == workspace_id, col(CaptureForm.deleted_at).is_(None))
        .order_by(col(CaptureForm.id))
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(col(CaptureForm.id) > _decode_cursor(cursor))
    found = list((await session.execute(query)).scalars())
    more = len(found) > limit
    found = found[:limit]
    views = [await view(session, form) for form in found]
    return views, (_encode_cursor(found[-1].id) if more and found else None)


# -- writing ---------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[FieldError(field, message)])


async def _check_page(session: AsyncSession, workspace_id: str, page_id: str | None) -> None:
    if page_id is None:
        return
    try:
        await pages.get_page(session, workspace_id=workspace_id, page_id=page_id)
    except pages.PageNotFound as exc:
        raise _invalid("page_id", "no such Page in this workspace") from exc


def _consent_history(
    history: dict[str, Any], version: str, text: str, *, field: str = "consent.version"
) -> dict[str, Any]:
    """Consent texts are append-only per version: the ledger names a version, and the version
    must keep meaning the words the person agreed to."""
    known = history.get(version)
    if known is not None and known != text:
        raise _invalid(field, "this version already names another text; give a new version")
    return {**history, version: text}


async def create_form(
    session: AsyncSession,
    *,
    workspace_id: str,
    values: dict[str, Any],
    prizes: Sequence[PrizeInput],
    now: datetime,
) -> FormView:
    """`values` holds every column the API validated (name, kind, allowed_origins, tags,
    consent_text, consent_version, double_opt_in, page_id, locale, triggers, look)."""
    await _check_page(session, workspace_id, values.get("page_id"))
    _check_wheel(values["kind"], prizes, field="wheel")
    form = CaptureForm(
        id=new_id("fm"),
        workspace_id=workspace_id,
        consent_texts=_consent_history({}, values["consent_version"], values["consent_text"]),
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(form)
    await session.flush()
    await _write_prizes(session, form, prizes, now=now)
    return await view(session, form)


def _check_wheel(kind: str, prizes: Sequence[PrizeInput], *, field: str) -> None:
    if kind != "minigame":
        if prizes:
            raise _invalid(field, "only a minigame form has a wheel")
        return
    if not any(p.weight > 0 for p in prizes):
        raise _invalid(f"{field}.prizes", "a minigame needs at least one prize with weight")


async def update_form(
    session: AsyncSession,
    *,
    workspace_id: str,
    form_id: str,
    changes: dict[str, Any],
    prizes: Sequence[PrizeInput] | None,
    now: datetime,
) -> FormView:
    """PATCH: given fields replace; `prizes`, when given, is the whole wheel in order (listed
    ids are updated, new entries added, unlisted prizes retired; codes are only ever added)."""
    form = await get_form(session, workspace_id=workspace_id, form_id=form_id)
    if "kind" in changes and changes["kind"] != form.kind:
        raise _invalid("kind", "a form's kind cannot change; create another form")
    if "page_id" in changes:
        await _check_page(session, workspace_id, changes["page_id"])
    text = changes.pop("consent_text", form.consent_text)
    version = changes.pop("consent_version", form.consent_version)
    if text != form.consent_text and version == form.consent_version:
        raise _invalid("consent.version", "a changed consent text needs a new version")
    form.consent_texts = _consent_history(form.consent_texts or {}, version, text)
    form.consent_text, form.consent_version = text, version
    for name, value in changes.items():
        setattr(form, name, value)
    if prizes is not None:
        _check_wheel(form.kind, prizes, field="wheel")
        await _write_prizes(session, form, prizes, now=now)
    form.updated_at = now
    await session.flush()
    _note_change()
    return await view(session, form)


async def _write_prizes(
    session: AsyncSession, form: CaptureForm, prizes: Sequence[PrizeInput], *, now: datetime
) -> None:
    existing = {
        p.id: p
        for p in (
            await session.execute(
                sa.select(CapturePrize).where(col(CapturePrize.form_id) == form.id)
            )
        ).scalars()
    }
    listed: set[str] = set()
    for position, wanted in enumerate(prizes):
        field = f"wheel.prizes[{position}]"
        if wanted.id is not None:
            prize = existing.get(wanted.id)
            if prize is None:
                raise _invalid(f"{field}.id", "no such prize on this form")
            if wanted.stock is not None and wanted.stock < prize.awarded:
                raise _invalid(f"{field}.stock", f"{prize.awarded} were already given out")
            prize.label, prize.weight, prize.stock = wanted.label, wanted.weight, wanted.stock
            prize.losing, prize.position, prize.active = wanted.losing, position, True
            prize.updated_at = now
        else:
            prize = CapturePrize(
                id=new_id("pz"),
                workspace_id=form.workspace_id,
                form_id=form.id,
                label=wanted.label,
                weight=wanted.weight,
                stock=wanted.stock,
                losing=wanted.losing,
                position=position,
                created_at=now,
                updated_at=now,
            )
            session.add(prize)
        if wanted.codes and wanted.losing:
            raise _invalid(f"{field}.codes", "a losing segment gives no codes")
        listed.add(prize.id)
        await session.flush()
        await _add_codes(session, prize, wanted.codes, now=now)
    for prize_id, prize in existing.items():
        if prize_id not in listed and prize.active:
            prize.active = False  # kept: spins and codes given out still name it
            prize.updated_at = now
    await session.flush()


async def _add_codes(
    session: AsyncSession, prize: CapturePrize, codes: Sequence[str], *, now: datetime
) -> None:
    unique = list(dict.fromkeys(c for c in codes if c))
    if not unique:
        return
    table = table_of(CapturePrizeCode)
    statement = insert_ignoring_conflicts(session, table, ["prize_id", "code"])
    for start in range(0, len(unique), 1000):
        await session.execute(
            statement,
            [
                {
                    "id": new_id("pc"),
                    "workspace_id": prize.workspace_id,
                    "prize_id": prize.id,
                    "code": code,
                    "created_at": now,
                }
                for code in unique[start : start + 1000]
            ],
        )


async def delete_form(
    session: AsyncSession, *, workspace_id: str, form_id: str, now: datetime
) -> None:
    form = await get_form(session, workspace_id=workspace_id, form_id=form_id)
    form.deleted_at = now
    form.updated_at = now
    await session.flush()
    _note_change()


# -- the widget's view -------------------------------------------------------------------------


def public_triggers(triggers: dict[str, Any]) -> dict[str, Any]:
    """Durations in seconds: what a small script compares with `Date.now()`."""
    frequency = triggers.get("frequency")
    delay = triggers.get("delay")
    return {
        "delay_seconds": int(parse_duration(delay).total_seconds()) if delay else None,
        "scroll_percent": triggers.get("scroll_percent"),
        "exit_intent": bool(triggers.get("exit_intent", False)),
        "frequency": {
            "times": frequency["times"],
            "per_seconds": int(parse_duration(frequency["per"]).total_seconds()),
        }
        if frequency
        else None,
    }


def public_config(
    form: CaptureForm, prizes: Sequence[PrizeView], *, capture_url: str, has_messenger: bool
) -> dict[str, Any]:
    """What the widget may know: never a weight, a stock or a code."""
    return {
        "id": form.id,
        "kind": form.kind,
        "locale": form.locale,
        "triggers": public_triggers(form.triggers or {}),
        "consent": {"text": form.consent_text, "version": form.consent_version},
        "double_opt_in": form.double_opt_in,
        "look": form.look or {},
        "honeypot_field": HONEYPOT_FIELD,
        "capture_url": capture_url,
        "messenger": has_messenger,
        "wheel": {"segments": [{"id": p.id, "label": p.label} for p in prizes]}
        if form.kind == "minigame"
        else None,
    }
