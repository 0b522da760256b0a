"""Campaign runs (DESIGN section 7): launching, starting scheduled, cron and trigger runs, planning
each run's deliveries, planning the next step when one ends, and noticing when runs finish.

A run's audience is evaluated once: planning walks the audience in contact-id order, in short
transactions of `batch` contacts, and only counts contacts that existed when the run started, so
a contact created meanwhile does not join a run already under way. Each batch is one multi-row
`INSERT ... ON CONFLICT DO NOTHING` on the (run, step, contact) key: a planner that crashed and
starts over, or two workers planning the same run, never create a second delivery.

A step's delay counts from the moment the previous step reached a final state for the contact,
so step k+1 is planned in the transaction that records step k's outcome (`plan_next_step`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.audience import AudienceFilter, audience_condition
from orchestrator.campaigns import planning, steps
from orchestrator.campaigns.cron import next_occurrence, parse_cron
from orchestrator.campaigns.spec import CampaignSpec, ScheduleAt, ScheduleCron
from orchestrator.db import insert_ignoring_conflicts, rows_affected, transaction
from orchestrator.delivery_states import State
from orchestrator.errors import Conflict
from orchestrator.ids import new_id
from orchestrator.models import (
    Campaign,
    CampaignRun,
    Contact,
    Delivery,
    MessengerIdentity,
    table_of,
)
from orchestrator.policy.window import window_closes_at

FINAL_STATES = (State.SENT.value, State.SKIPPED.value, State.FAILED.value, State.CANCELLED.value)
# Outcomes after which a sequence stops for the contact: the campaign was cancelled, or its Page
# was paused (resuming the Page resumes the pending rows; a paused row is not "done").
_STOPS_SEQUENCE = frozenset({"skipped.cancelled", "failed.page_paused"})


def spec_of(campaign: Campaign) -> CampaignSpec:
    return steps.parse_stored(campaign.id, campaign.spec, campaign.updated_at.isoformat())


async def launch(session: AsyncSession, *, campaign: Campaign, now: datetime) -> CampaignRun | None:
    """draft -> running with a run now (`schedule: "now"`), -> scheduled (`at`, `cron`), or
    -> running without a run (a trigger campaign waits for its events)."""
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign.id} is {campaign.status}, not a draft")
    spec = spec_of(campaign)
    campaign.launched_at = now
    campaign.updated_at = now
    run: CampaignRun | None = None
    if spec.trigger is not None:
        campaign.status = "running"
    elif isinstance(spec.schedule, ScheduleAt):
        campaign.status = "scheduled"
        campaign.next_run_at = spec.schedule.at
    elif isinstance(spec.schedule, ScheduleCron):
        campaign.status = "scheduled"
        campaign.next_run_at = _next_cron(spec.schedule, now)
    else:
        campaign.status = "running"
        run = _new_run(campaign, kind="launch", occurrence="launch", now=now)
        session.add(run)
    session.add(campaign)
    await session.flush()
    return run


def _next_cron(schedule: ScheduleCron, after: datetime) -> datetime:
    return next_occurrence(parse_cron(schedule.cron), ZoneInfo(schedule.timezone), after)


def _new_run(
    campaign: Campaign,
    *,
    kind: str,
    occurrence: str,
    now: datetime,
    contact_id: str | None = None,
) -> CampaignRun:
    return CampaignRun(
        id=new_id("run"),
        workspace_id=campaign.workspace_id,
        campaign_id=campaign.id,
        kind=kind,
        occurrence=occurrence,
        contact_id=contact_id,
        status="planning",
        started_at=now,
        created_at=now,
    )


async def _insert_run(session: AsyncSession, run: CampaignRun) -> bool:
    """Insert unless the (campaign, occurrence) run exists: True when this call created it."""
    table = table_of(CampaignRun)
    values = {column.name: getattr(run, column.name) for column in table.columns}
    result = await session.execute(
        insert_ignoring_conflicts(session, table, ["campaign_id", "occurrence"])
        .values(**values)
        .returning(table.c.id)
    )
    return result.first() is not None


async def start_due_runs(session: AsyncSession, *, now: datetime) -> int:
    """Start the runs of scheduled (`at`) and cron campaigns whose time has come. A cron
    campaign's missed occurrences (workers down) collapse into one run, then the next
    occurrence after `now` is planned."""
    table = table_of(Campaign)
    query = (
        sa.select(table.c.id)
        .where(table.c.status.in_(("scheduled", "running")), table.c.next_run_at <= now)
        .order_by(table.c.next_run_at)
        .limit(100)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    started = 0
    for campaign_id in (await session.execute(query)).scalars().all():
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.next_run_at is not None
        spec = spec_of(campaign)
        if isinstance(spec.schedule, ScheduleCron):
            occurrence = f"cron:{campaign.next_run_at.isoformat()}"
            kind = "cron"
            campaign.next_run_at = _next_cron(spec.schedule, now)
        else:
            occurrence, kind = "at", "scheduled"
            campaign.next_run_at = None
        campaign.status = "running"
        campaign.updated_at = now
        if await _insert_run(
            session, _new_run(campaign, kind=kind, occurrence=occurrence, now=now)
        ):
            started += 1
    await session.flush()
    return started


async def fire_trigger(
    session: AsyncSession,
    *,
    workspace_id: str,
    on: str,
    key: str,
    contact_id: str,
    event_id: str,
    now: datetime,
) -> int:
    """Start a run for one contact in every running campaign whose trigger is (`on`, `key`);
    the event id makes it idempotent. The run is planned at once: one contact is cheap."""
    table = table_of(Campaign)
    campaign_ids = (
        (
            await session.execute(
                sa.select(table.c.id).where(
                    table.c.workspace_id == workspace_id,
                    table.c.status == "running",
                    table.c.trigger_on == on,
                    table.c.trigger_key == key,
                )
            )
        )
        .scalars()
        .all()
    )
    started = 0
    for campaign_id in campaign_ids:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        run = _new_run(
            campaign,
            kind="trigger",
            occurrence=f"trigger:{event_id}"[:200],
            now=now,
            contact_id=contact_id,
        )
        if await _insert_run(session, run):
            await _plan_batch(session, campaign, run, after_contact=None, limit=1, now=now)
            await _finish_planning(session, run.id, now=now)
            started += 1
    return started


@dataclass(frozen=True)
class _RunRef:
    id: str
    campaign_id: str
    contact_id: str | None
    started_at: datetime


async def plan_pending_runs(
    sessions: async_sessionmaker[AsyncSession],
    *,
    clock: Callable[[], datetime],
    batch: int = 2000,
) -> int:
    """Plan step 1 of every run still `planning`, batch by batch; returns deliveries planned."""
    async with sessions() as session:
        runs = table_of(CampaignRun)
        pending = [
            _RunRef(row.id, row.campaign_id, row.contact_id, row.started_at)
            for row in (
                await session.execute(
                    sa.select(
                        runs.c.id, runs.c.campaign_id, runs.c.contact_id, runs.c.started_at
                    ).where(runs.c.status == "planning")
                )
            ).all()
        ]
    planned = 0
    for ref in pending:
        planned += await _plan_run(sessions, ref, clock=clock, batch=batch)
    return planned


async def _plan_run(
    sessions: async_sessionmaker[AsyncSession],
    ref: _RunRef,
    *,
    clock: Callable[[], datetime],
    batch: int,
) -> int:
    deliveries = table_of(Delivery)
    planned = 0
    async with sessions() as session:
        # Resume after the last contact planned (a crash, or another worker, got this far).
        after = (
            await session.execute(
                sa.select(sa.func.max(deliveries.c.contact_id)).where(
                    deliveries.c.campaign_run_id == ref.id, deliveries.c.step_index == 0
                )
            )
        ).scalar_one_or_none()
    while True:
        async with transaction(sessions) as session:
            campaign = await session.get(Campaign, ref.campaign_id)
            run = await session.get(CampaignRun, ref.id)
            if campaign is None or run is None or run.status != "planning":
                return planned
            count, last = await _plan_batch(
                session, campaign, run, after_contact=after, limit=batch, now=clock()
            )
            planned += count
            if last is None:
                await _finish_planning(session, run.id, now=clock())
                return planned
            after = last


async def _plan_batch(
    session: AsyncSession,
    campaign: Campaign,
    run: CampaignRun,
    *,
    after_contact: str | None,
    limit: int,
    now: datetime,
) -> tuple[int, str | None]:
    """Plan step 1 for the next `limit` audience contacts after `after_contact`; returns how many
    rows were inserted and the last contact id seen (None when the audience is exhausted)."""
    spec = spec_of(campaign)
    contacts = table_of(Contact)
    # An alias: the audience's EXISTS subqueries correlate on the identities table itself.
    identities = table_of(MessengerIdentity).alias("page_identity")
    audience = AudienceFilter(
        tags_any=spec.audience.tags_any,
        tags_all=spec.audience.tags_all,
        tags_none=spec.audience.tags_none,
        email_status=spec.audience.email_status,
        messenger=spec.audience.messenger,
        # `required`/`none` mean an identity on the campaign's Page; `any` filters nothing.
        page_id=None if spec.audience.messenger == "any" else spec.page_id,
        contact_ids=[run.contact_id] if run.contact_id else spec.audience.contact_ids,
    )
    query = (
        sa.select(contacts.c.id, contacts.c.timezone, identities.c.window_opened_at)
        .select_from(
            contacts.outerjoin(
                identities,
                sa.and_(
                    identities.c.contact_id == contacts.c.id,
                    identities.c.page_id == spec.page_id,
                ),
            )
        )
        .where(
            audience_condition(campaign.workspace_id, audience),
            contacts.c.created_at <= run.started_at,
        )
        .order_by(contacts.c.id)
        .limit(limit)
    )
    if after_contact is not None:
        query = query.where(contacts.c.id > after_contact)
    rows = (await session.execute(query)).all()
    if not rows:
        return 0, None
    values: list[dict[str, Any]] = []
    last: str | None = None
    for row in rows:
        if row.id == last:
            continue  # two identities on one Page: the contact once
        last = row.id
        due_at, content = due_for(
            spec,
            0,
            # Step 1 counts from the run's start (DESIGN section 7).
            previous_final_at=run.started_at,
            window_event_at=row.window_opened_at,
            zone=row.timezone,
            now=now,
        )
        values.append(_delivery_values(campaign, run.id, 0, row.id, due_at, content, now))
    inserted = await _insert_deliveries(session, values)
    return inserted, last


def due_for(
    spec: CampaignSpec,
    index: int,
    *,
    previous_final_at: datetime,
    window_event_at: datetime | None,
    zone: str | None,
    now: datetime,
) -> tuple[datetime, dict[str, Any]]:
    """When step `index` is due for one contact, and the per-row content marks (DESIGN section 7:
    a window-relative step moves to the last allowed minute of the send window, or its
    fallback applies)."""
    step = spec.steps[index]
    due = planning.next_due(
        step,
        previous_final_at=previous_final_at,
        last_window_event_at=window_event_at,
        now=max(now, previous_final_at),
    )
    if not step.delay.window_relative:
        return due.due_at, {}
    if due.fallback_applies:
        return due.due_at, {steps.FALLBACK_NOW: "no_window"}
    fitted = planning.fit_send_window(
        due.due_at,
        steps.send_window_for(spec, zone),
        window_relative=True,
        now=max(now, previous_final_at),
        messenger_window_closes_at=window_closes_at(window_event_at),
    )
    if fitted is None:
        return due.due_at, {steps.FALLBACK_NOW: "send_window"}
    return fitted, {}


def _delivery_values(
    campaign: Campaign,
    run_id: str,
    index: int,
    contact_id: str,
    due_at: datetime,
    content: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("dl"),
        "workspace_id": campaign.workspace_id,
        "kind": "step",
        "campaign_id": campaign.id,
        "campaign_run_id": run_id,
        "step_index": index,
        "contact_id": contact_id,
        "page_id": campaign.page_id,
        "purpose": campaign.purpose,
        "topic": campaign.topic,
        "state": State.PENDING.value,
        "due_at": due_at,
        "content": content,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


# (column, PostgreSQL array type) of a planned delivery, as `_delivery_values` builds it.
_UNNEST_COLUMNS: Final = (
    ("id", "varchar"),
    ("workspace_id", "varchar"),
    ("kind", "varchar"),
    ("campaign_id", "varchar"),
    ("campaign_run_id", "varchar"),
    ("step_index", "integer"),
    ("contact_id", "varchar"),
    ("page_id", "varchar"),
    ("purpose", "varchar"),
    ("topic", "varchar"),
    ("state", "varchar"),
    ("due_at", "timestamptz"),
    ("content", "jsonb"),
    ("attempts", "integer"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
# Built from the constant column list above, never from input.
_UNNEST_SQL: Final = (
    "INSERT INTO deliveries ({names}) SELECT * FROM unnest({arrays}) {tail}".format(  # noqa: S608
        names=", ".join(name for name, _ in _UNNEST_COLUMNS),
        arrays=", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _UNNEST_COLUMNS),
        tail="ON CONFLICT (campaign_run_id, step_index, contact_id) DO NOTHING RETURNING id",
    )
)
_UNNEST_INSERT: Final = sa.text(_UNNEST_SQL)


async def _insert_deliveries(session: AsyncSession, values: Sequence[dict[str, Any]]) -> int:
    if not values:
        return 0
    if session.get_bind().dialect.name == "postgresql" and len(values) > 1:
        # One array per column: psycopg then parses a short statement instead of a VALUES list
        # of 16 placeholders per row, which was half of the planning time (bench/campaign.py).
        params: dict[str, list[Any]] = {name: [] for name, _ in _UNNEST_COLUMNS}
        for row in values:
            for name, kind in _UNNEST_COLUMNS:
                params[name].append(json.dumps(row[name]) if kind == "jsonb" else row[name])
        return len((await session.execute(_UNNEST_INSERT, params)).all())
    table = table_of(Delivery)
    result = await session.execute(
        insert_ignoring_conflicts(
            session, table, ["campaign_run_id", "step_index", "contact_id"]
        ).returning(table.c.id),
        list(values),
    )
    return len(result.all())


async def _finish_planning(session: AsyncSession, run_id: str, *, now: datetime) -> None:
    deliveries = table_of(Delivery)
    runs = table_of(CampaignRun)
    count = (
        await session.execute(
            sa.select(sa.func.count()).where(
                deliveries.c.campaign_run_id == run_id, deliveries.c.step_index == 0
            )
        )
    ).scalar_one()
    await session.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status == "planning")
        .values(
            status="running" if count else "completed",
            audience_count=int(count),
            planned_at=now,
            completed_at=None if count else now,
        )
    )


async def plan_next_step(
    session: AsyncSession,
    *,
    campaign_id: str,
    run_id: str,
    step_index: int,
    contact_id: str,
    reason: str,
    final_at: datetime,
    now: datetime,
) -> bool:
    """After step `step_index` reached a final state for a contact, plan the next step (in the
    same transaction as that outcome). Returns True when a delivery was planned."""
    if reason in _STOPS_SEQUENCE:
        return False
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None or campaign.status == "cancelled":
        return False
    spec = spec_of(campaign)
    index = step_index + 1
    if index >= len(spec.steps):
        return False
    contacts = table_of(Contact)
    identities = table_of(MessengerIdentity)
    row = (
        await session.execute(
            sa.select(contacts.c.timezone, identities.c.window_opened_at)
            .select_from(
                contacts.outerjoin(
                    identities,
                    sa.and_(
                        identities.c.contact_id == contacts.c.id,
                        identities.c.page_id == campaign.page_id,
                    ),
                )
            )
            .where(contacts.c.id == contact_id)
            .limit(1)
        )
    ).first()
    if row is None:
        return False  # erased meanwhile
    due_at, content = due_for(
        spec,
        index,
        previous_final_at=final_at,
        window_event_at=row.window_opened_at,
        zone=row.timezone,
        now=now,
    )
    values = _delivery_values(campaign, run_id, index, contact_id, due_at, content, now)
    return await _insert_deliveries(session, [values]) == 1


async def complete_finished(session: AsyncSession, *, now: datetime) -> int:
    """Runs with every delivery final are completed; a `now` or `at` campaign whose runs are all
    completed is completed (cron and trigger campaigns run until cancelled)."""
    runs = table_of(CampaignRun)
    deliveries = table_of(Delivery)
    campaigns = table_of(Campaign)
    open_rows = sa.exists().where(
        deliveries.c.campaign_run_id == runs.c.id, deliveries.c.state.not_in(FINAL_STATES)
    )
    result = await session.execute(
        sa.update(runs)
        .where(runs.c.status == "running", ~open_rows)
        .values(status="completed", completed_at=now)
    )
    completed = rows_affected(result)
    unfinished = sa.exists().where(
        runs.c.campaign_id == campaigns.c.id, runs.c.status.in_(("planning", "running"))
    )
    await session.execute(
        sa.update(campaigns)
        .where(
            campaigns.c.status == "running",
            campaigns.c.trigger_on.is_(None),
            campaigns.c.next_run_at.is_(None),
            ~unfinished,
            sa.exists().where(runs.c.campaign_id == campaigns.c.id),
        )
        .values(status="completed", completed_at=now, updated_at=now)
    )
    return completed
