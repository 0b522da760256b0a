"""The read side of campaigns: the campaign as the API shows it, its runs, its deliveries, its
stats (DESIGN section 7). Lists are keyset-paginated Core queries; stats are GROUP BY queries, so
a campaign of 100,000 deliveries is counted by the database, never loaded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.delivery_states import State
from orchestrator.errors import FieldError, NotFound, ValidationFailed
from orchestrator.models import (
    Campaign,
    CampaignRun,
    ConsentRecord,
    Delivery,
    InteractionEvent,
    Page,
    table_of,
)

# A stored `paused` is always an operator's pause; a Page pause is reported, never stored, so
# fixing the Page resumes its campaigns without anyone touching them.
OPERATOR_PAUSE: Final = "operator"
PAGE_PAUSE_PREFIX: Final = "page_paused: "
# Statuses during which a campaign sends (or will), so a paused Page stops it.
ACTIVE_STATUSES: Final = frozenset({"running", "scheduled"})
SPEC_FIELDS: Final = (
    "audience",
    "trigger",
    "steps",
    "schedule",
    "send_window",
    "frequency_cap",
    "frequency_cap_period",
    "throttle",
)


class CampaignNotFound(NotFound):
    slug = "campaign-not-found"
    title = "Campaign not found"


# -- cursors -------------------------------------------------------------------------------------


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, size: int) -> list[str]:
    """The parts of a cursor this module wrote; anything else is 422 naming `query.cursor`."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != size
        or not all(isinstance(p, str) for p in parts)
    ):
        raise ValidationFailed(
            "The cursor is not one this API returned",
            errors=[FieldError("query.cursor", "invalid cursor")],
        )
    return parts


def _cursor_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationFailed(
            "The cursor is not one this API returned",
            errors=[FieldError("query.cursor", "invalid cursor")],
        )
    return moment


# -- the campaign --------------------------------------------------------------------------------


def reported_status(
    status: str, *, page_paused: bool, page_paused_reason: str | None
) -> tuple[str, str | None]:
    """The status and pause reason the API shows: a running or scheduled campaign of a paused
    Page is paused in effect (the dispatcher sends nothing for that Page)."""
    if status == "paused":
        return status, OPERATOR_PAUSE
    if status in ACTIVE_STATUSES and page_paused:
        return "paused", PAGE_PAUSE_PREFIX + (page_paused_reason or "unknown")
    return status, None


def campaign_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign row (with its Page's pause columns) in the API's shape."""
    status, paused_reason = reported_status(
        row["status"],
        page_paused=row["page_paused_at"] is not None,
        page_paused_reason=row["page_paused_reason"],
    )
    spec: Mapping[str, Any] = row["spec"] or {}
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "page_id": row["page_id"],
        "purpose": row["purpose"],
        "topic": row["topic"],
        "status": status,
        "paused_reason": paused_reason,
    }
    view.update({name: spec.get(name) for name in SPEC_FIELDS})
    view.update(
        {
            name: row[name]
            for name in (
                "next_run_at",
                "launched_at",
                "paused_at",
                "cancelled_at",
                "completed_at",
                "created_at",
                "updated_at",
            )
        }
    )
    return view


def _view_query() -> sa.Select[Any]:
    campaigns, pages = table_of(Campaign), table_of(Page)
    return sa.select(
        campaigns,
        pages.c.paused_at.label("page_paused_at"),
        pages.c.paused_reason.label("page_paused_reason"),
    ).select_from(
        campaigns.outerjoin(
            pages,
            sa.and_(
                pages.c.page_id == campaigns.c.page_id,
                pages.c.workspace_id == campaigns.c.workspace_id,
            ),
        )
    )


async def get_campaign(session: AsyncSession, *, workspace_id: str, campaign_id: str) -> Campaign:
    """The ORM row, for the write side; another workspace's campaign does not exist."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != workspace_id:
        raise CampaignNotFound(f"No campaign {campaign_id!r}")
    return campaign


async def require_campaign(session: AsyncSession, *, workspace_id: str, campaign_id: str) -> None:
    """404 unless the campaign is this workspace's; reads one column."""
    campaigns = table_of(Campaign)
    found = (
        await session.execute(
            sa.select(campaigns.c.id).where(
                campaigns.c.id == campaign_id, campaigns.c.workspace_id == workspace_id
            )
        )
    ).first()
    if found is None:
        raise CampaignNotFound(f"No campaign {campaign_id!r}")


async def view(session: AsyncSession, *, workspace_id: str, campaign_id: str) -> dict[str, Any]:
    campaigns = table_of(Campaign)
    row = (
        (
            await session.execute(
                _view_query().where(
                    campaigns.c.id == campaign_id, campaigns.c.workspace_id == workspace_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise CampaignNotFound(f"No campaign {campaign_id!r}")
    return campaign_view(row)


async def list_campaigns(
    session: AsyncSession,
    *,
    workspace_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first. `status` filters on the stored status (a Page pause is not stored)."""
    campaigns = table_of(Campaign)
    query = (
        _view_query()
        .where(campaigns.c.workspace_id == workspace_id)
        .order_by(campaigns.c.created_at.desc(), campaigns.c.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(campaigns.c.status == status)
    if cursor:
        at, last_id = decode_cursor(cursor, size=2)
        moment = _cursor_time(at)
        query = query.where(
            sa.or_(
                campaigns.c.created_at < moment,
                sa.and_(campaigns.c.created_at == moment, campaigns.c.id < last_id),
            )
        )
    rows = list((await session.execute(query)).mappings())
    page, more = rows[:limit], len(rows) > limit
    next_cursor = (
        encode_cursor(page[-1]["created_at"].isoformat(), page[-1]["id"]) if more else None
    )
    return [campaign_view(r) for r in page], next_cursor


# -- runs and deliveries -------------------------------------------------------------------------

RUN_FIELDS: Final = (
    "id",
    "kind",
    "occurrence",
    "contact_id",
    "status",
    "audience_count",
    "started_at",
    "planned_at",
    "completed_at",
)
DELIVERY_FIELDS: Final = (
    "id",
    "run_id",
    "step_index",
    "contact_id",
    "state",
    "reason",
    "channel",
    "due_at",
    "sent_at",
    "attempts",
    "messaging_type",
    "tag",
    "last_error",
    "delivered_at",
    "read_at",
    "clicked_at",
)


async def list_runs(
    session: AsyncSession,
    *,
    workspace_id: str,
    campaign_id: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first (a trigger campaign has a run per firing, so this list can be long)."""
    await require_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    runs = table_of(CampaignRun)
    query = (
        sa.select(*(runs.c[name] for name in RUN_FIELDS))
        .where(runs.c.campaign_id == campaign_id, runs.c.workspace_id == workspace_id)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        at, last_id = decode_cursor(cursor, size=2)
        moment = _cursor_time(at)
        query = query.where(
            sa.or_(
                runs.c.started_at < moment,
                sa.and_(runs.c.started_at == moment, runs.c.id < last_id),
            )
        )
    rows = [dict(r) for r in (await session.execute(query)).mappings()]
    page, more = rows[:limit], len(rows) > limit
    next_cursor = (
        encode_cursor(page[-1]["started_at"].isoformat(), page[-1]["id"]) if more else None
    )
    return page, next_cursor


@dataclass(frozen=True)
class DeliveryFilter:
    state: str | None = None
    reason: str | None = None
    channel: str | None = None


async def list_deliveries(
    session: AsyncSession,
    *,
    workspace_id: str,
    campaign_id: str,
    filters: DeliveryFilter,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """In id order (ids are time-ordered, so roughly planning order); one page per query."""
    await require_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    table = table_of(Delivery)
    columns = [
        table.c.campaign_run_id.label("run_id") if name == "run_id" else table.c[name]
        for name in DELIVERY_FIELDS
    ]
    query = (
        sa.select(*columns)
        .where(table.c.campaign_id == campaign_id, table.c.workspace_id == workspace_id)
        .order_by(table.c.id)
        .limit(limit + 1)
    )
    if filters.state is not None:
        query = query.where(table.c.state == filters.state)
    if filters.reason is not None:
        query = query.where(table.c.reason == filters.reason)
    if filters.channel is not None:
        query = query.where(table.c.channel == filters.channel)
    if cursor:
        (last_id,) = decode_cursor(cursor, size=1)
        query = query.where(table.c.id > last_id)
    rows = [dict(r) for r in (await session.execute(query)).mappings()]
    page, more = rows[:limit], len(rows) > limit
    return page, (encode_cursor(page[-1]["id"]) if more else None)


# -- stats ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    fallback_emails: int = 0
    clicked: int = 0
    reopened: int = 0
    completed_on_messenger: int = 0
    unsubscribed: int = 0


@dataclass(frozen=True)
class CampaignStats:
    audience: int
    by_state: dict[str, int]
    sent_by_route: dict[str, int]
    skipped_by_reason: dict[str, int]
    failed_by_reason: dict[str, int]
    funnel: Funnel


def tally(groups: Sequence[tuple[str, str | None, int]]) -> dict[str, dict[str, int]]:
    """(state, reason, count) groups -> `by_state` with every state, and the per-reason counts of
    sent, skipped and failed deliveries. A row without a reason counts as `unknown`."""
    by_state = {state.value: 0 for state in State}
    per_reason: dict[str, dict[str, int]] = {
        State.SENT.value: {},
        State.SKIPPED.value: {},
        State.FAILED.value: {},
    }
    for state, reason, count in groups:
        by_state[state] = by_state.get(state, 0) + count
        if state in per_reason:
            bucket = per_reason[state]
            key = reason or "unknown"
            bucket[key] = bucket.get(key, 0) + count
    return {"by_state": by_state, **per_reason}


async def stats(session: AsyncSession, *, workspace_id: str, campaign_id: str) -> CampaignStats:
    await require_campaign(session, workspace_id=workspace_id, campaign_id=campaign_id)
    deliveries, runs = table_of(Delivery), table_of(CampaignRun)
    ours = sa.and_(
        deliveries.c.campaign_id == campaign_id, deliveries.c.workspace_id == workspace_id
    )
    audience = (
        await session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(runs.c.audience_count), 0)).where(
                runs.c.campaign_id == campaign_id, runs.c.workspace_id == workspace_id
            )
        )
    ).scalar_one()
    groups = (
        await session.execute(
            sa.select(deliveries.c.state, deliveries.c.reason, sa.func.count())
            .where(ours)
            .group_by(deliveries.c.state, deliveries.c.reason)
        )
    ).all()
    counted = tally([(str(g[0]), g[1], int(g[2])) for g in groups])
    return CampaignStats(
        audience=int(audience),
        by_state=counted["by_state"],
        sent_by_route=counted[State.SENT.value],
        skipped_by_reason=counted[State.SKIPPED.value],
        failed_by_reason=counted[State.FAILED.value],
        funnel=await _funnel(session, workspace_id=workspace_id, campaign_id=campaign_id),
    )


def _sent_on(table: sa.FromClause, campaign_id: str, workspace_id: str, channel: str) -> Any:
    return sa.and_(
        table.c.campaign_id == campaign_id,
        table.c.workspace_id == workspace_id,
        table.c.state == State.SENT.value,
        table.c.channel == channel,
    )


async def _funnel(session: AsyncSession, *, workspace_id: str, campaign_id: str) -> Funnel:
    emails = table_of(Delivery).alias("emails")
    later = table_of(Delivery).alias("later")
    events, ledger = table_of(InteractionEvent), table_of(ConsentRecord)
    sent_email = _sent_on(emails, campaign_id, workspace_id, "email")

    fallback_emails, clicked = (
        await session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(emails.c.clicked_at),
            ).where(sent_email)
        )
    ).one()

    # A reopen event names the delivery whose m.me ref brought the person back (reopen.py).
    reopened = (
        await session.execute(
            sa.select(sa.func.count(sa.distinct(emails.c.contact_id)))
            .select_from(emails.join(events, events.c.delivery_id == emails.c.id))
            .where(
                emails.c.campaign_id == campaign_id,
                emails.c.workspace_id == workspace_id,
                events.c.workspace_id == workspace_id,
                events.c.type == "reopen",
            )
        )
    ).scalar_one()

    back_on_messenger = (
        sa.select(sa.literal(1))
        .where(
            _sent_on(later, campaign_id, workspace_id, "messenger"),
            later.c.contact_id == emails.c.contact_id,
            later.c.sent_at > emails.c.sent_at,
        )
        .exists()
    )
    completed = (
        await session.execute(
            sa.select(sa.func.count(sa.distinct(emails.c.contact_id))).where(
                sent_email, back_on_messenger
            )
        )
    ).scalar_one()

    # The ledger does not keep the delivery an unsubscribe link came from, so an unsubscribe
    # link used after the contact's first email of this campaign is counted for it.
    first_email = (
        sa.select(emails.c.contact_id, sa.func.min(emails.c.sent_at).label("first_at"))
        .where(sent_email)
        .group_by(emails.c.contact_id)
        .subquery("first_email")
    )
    unsubscribed = (
        await session.execute(
            sa.select(sa.func.count(sa.distinct(ledger.c.contact_id)))
            .select_from(ledger.join(first_email, first_email.c.contact_id == ledger.c.contact_id))
            .where(
                ledger.c.workspace_id == workspace_id,
                ledger.c.channel == "email",
                ledger.c.action == "unsubscribe",
                ledger.c.source == "unsubscribe_link",
                ledger.c.occurred_at >= first_email.c.first_at,
            )
        )
    ).scalar_one()
    return Funnel(
        fallback_emails=int(fallback_emails),
        clicked=int(clicked),
        reopened=int(reopened),
        completed_on_messenger=int(completed),
        unsubscribed=int(unsubscribed),
    )
