"""What `/metrics` reports from the database, read at scrape time (DESIGN sections 8 and 9).

The queue, the webhook inbox and the capture counters live in the database, shared by every
process; counting them in each process's memory would report one process's share, and lose it on
restart. So a scrape runs a handful of GROUP BY queries (`read_database_metrics`), cached for
`OUTREACH_METRICS_CACHE_SECONDS` (`MetricsCache`) so that a scrape storm costs one read.

Deliveries are never deleted and sent, skipped, failed and cancelled are final states, so their
counts only grow and are exposed as counters; so are webhook inbox rows (never deleted) and the
capture counters. (Erasing a contact clears `last_error` on its deliveries: the error counts can
then drop, which Prometheus treats as a counter reset.) Everything else is a gauge.

Nothing here names a person, a contact, a form or a workspace: labels are states, channels,
reasons, error classes, event types and capture outcomes.

`families()` turns a reading into `Family` values shaped like Prometheus metric families, so that
the exporter is a thin loop over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from orchestrator.capture.inbox import PENDING as CAPTURE_PENDING
from orchestrator.delivery_states import FINAL, State
from orchestrator.models import (
    Campaign,
    CaptureCounter,
    CaptureInbox,
    Delivery,
    Page,
    WebhookInbox,
    table_of,
)

NONE = "none"
"""The label value of a missing channel, reason or error class."""


@dataclass(frozen=True)
class DatabaseMetrics:
    read_at: datetime
    deliveries: Mapping[tuple[str, str, str], int]
    """(state, channel, reason) -> deliveries in that final state."""
    delivery_errors: Mapping[tuple[str, str], int]
    """(state, error class) -> final deliveries whose last provider error has that class."""
    retrying: Mapping[str, int]
    """error class -> pending deliveries that failed at least once and wait for another attempt."""
    queue_depth: int
    """Pending deliveries due now that a worker may claim (not of a paused campaign or Page)."""
    oldest_due_age_seconds: float
    """How long the oldest of those has been due; 0 when there is none."""
    in_flight: int
    """Deliveries claimed by a worker right now."""
    webhook_events: Mapping[str, int]
    """event type -> webhook inbox rows ever stored."""
    inbox_pending: int
    inbox_lag_seconds: float
    """Age of the oldest inbox row not yet applied; 0 when the inbox is drained."""
    captures: Mapping[str, int]
    """capture outcome (`captured`, `confirmed`, `rejected.<reason>`, ...) -> count, all forms."""
    capture_inbox: Mapping[str, int]
    """status (`pending`, `failed`) -> accepted captures not applied yet (capture.apply)."""
    capture_inbox_lag_seconds: float
    """Age of the oldest pending capture; 0 when the queue is drained."""


async def read_database_metrics(session: AsyncSession, *, now: datetime) -> DatabaseMetrics:
    deliveries = table_of(Delivery)
    final = [state.value for state in FINAL]
    error_class = deliveries.c.last_error["class"].as_string()

    by_outcome = await session.execute(
        sa.select(deliveries.c.state, deliveries.c.channel, deliveries.c.reason, sa.func.count())
        .where(deliveries.c.state.in_(final))
        .group_by(deliveries.c.state, deliveries.c.channel, deliveries.c.reason)
    )
    errors = await session.execute(
        sa.select(deliveries.c.state, error_class, sa.func.count())
        .where(deliveries.c.state.in_(final), error_class.is_not(None))
        .group_by(deliveries.c.state, error_class)
    )
    retrying = await session.execute(
        # The same expression object in SELECT and GROUP BY: PostgreSQL matches them by their
        # bound parameters, which a second construct would name differently.
        sa.select(error_class, sa.func.count())
        .where(deliveries.c.state == State.PENDING.value, deliveries.c.attempts > 0)
        .group_by(error_class)
    )

    # The claim query's conditions (orchestrator.dispatch), but for the busy-contact rule: a row
    # waiting behind its contact's earlier delivery is still work that is late.
    due_since = sa.case(
        (deliveries.c.next_attempt_at > deliveries.c.due_at, deliveries.c.next_attempt_at),
        else_=deliveries.c.due_at,
    )
    campaigns = table_of(Campaign)
    pages = table_of(Page)
    queue = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(due_since)).where(
                deliveries.c.state == State.PENDING.value,
                deliveries.c.due_at <= now,
                sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
                sa.or_(
                    deliveries.c.campaign_id.is_(None),
                    deliveries.c.campaign_id.not_in(
                        sa.select(campaigns.c.id).where(campaigns.c.status == "paused")
                    ),
                ),
                sa.or_(
                    deliveries.c.page_id.is_(None),
                    deliveries.c.page_id.not_in(
                        sa.select(pages.c.page_id).where(pages.c.paused_at.is_not(None))
                    ),
                ),
            )
        )
    ).one()
    in_flight = (
        await session.execute(
            sa.select(sa.func.count()).where(deliveries.c.state == State.CLAIMED.value)
        )
    ).scalar_one()

    inbox = table_of(WebhookInbox)
    events = await session.execute(
        sa.select(inbox.c.event_type, sa.func.count()).group_by(inbox.c.event_type)
    )
    pending_inbox = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.min(inbox.c.received_at)).where(
                inbox.c.applied_at.is_(None)
            )
        )
    ).one()

    accepted = table_of(CaptureInbox)
    capture_queue = await session.execute(
        sa.select(accepted.c.status, sa.func.count(), sa.func.min(accepted.c.received_at)).group_by(
            accepted.c.status
        )
    )
    queued = {str(status): (int(count), oldest) for status, count, oldest in capture_queue.all()}

    counters = table_of(CaptureCounter)
    captures = await session.execute(
        sa.select(counters.c.outcome, sa.func.sum(counters.c.count)).group_by(counters.c.outcome)
    )

    return DatabaseMetrics(
        read_at=now,
        deliveries={
            (state, channel or NONE, reason or NONE): int(count)
            for state, channel, reason, count in by_outcome.all()
        },
        delivery_errors={(state, str(cls)): int(count) for state, cls, count in errors.all()},
        retrying={(cls or NONE): int(count) for cls, count in retrying.all()},
        queue_depth=int(queue[0]),
        oldest_due_age_seconds=_age(queue[1], now),
        in_flight=int(in_flight),
        webhook_events={str(kind): int(count) for kind, count in events.all()},
        inbox_pending=int(pending_inbox[0]),
        inbox_lag_seconds=_age(pending_inbox[1], now),
        captures={str(outcome): int(count or 0) for outcome, count in captures.all()},
        capture_inbox={status: count for status, (count, _) in queued.items()},
        capture_inbox_lag_seconds=_age(queued.get(CAPTURE_PENDING, (0, None))[1], now),
    )


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


class MetricsCache:
    """One database reading shared by the scrapes of `ttl`; concurrent scrapes wait for the one
    read in progress instead of starting their own."""

    def __init__(self, ttl: timedelta, *, clock: Callable[[], datetime]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._last: DatabaseMetrics | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: datetime) -> DatabaseMetrics | None:
        last = self._last
        if last is not None and timedelta(0) <= now - last.read_at < self._ttl:
            return last
        return None

    async def read(self, sessions: async_sessionmaker[AsyncSession]) -> DatabaseMetrics:
        cached = self._fresh(self._clock())
        if cached is not None:
            return cached
        async with self._lock:
            now = self._clock()
            cached = self._fresh(now)
            if cached is not None:
                return cached
            async with sessions() as session:
                self._last = await read_database_metrics(session, now=now)
            return self._last


# -- the exported shape ---------------------------------------------------------------------------

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class Sample:
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Family:
    """A Prometheus metric family. A counter's `name` has no `_total`: the exposition adds it
    (as prometheus_client's CounterMetricFamily does)."""

    name: str
    kind: Kind
    help: str
    label_names: tuple[str, ...]
    samples: tuple[Sample, ...]


def _labelled(
    name: str,
    kind: Kind,
    help_text: str,
    label_names: tuple[str, ...],
    rows: Iterable[tuple[tuple[str, ...], int]],
) -> Family:
    samples = tuple(
        Sample(tuple(zip(label_names, key, strict=True)), value) for key, value in sorted(rows)
    )
    return Family(name, kind, help_text, label_names, samples)


def _by_one(values: Mapping[str, int]) -> Iterable[tuple[tuple[str, ...], int]]:
    return (((key,), value) for key, value in values.items())


def _single(name: str, help_text: str, value: float) -> Family:
    return Family(name, "gauge", help_text, (), (Sample((), value),))


def families(metrics: DatabaseMetrics) -> list[Family]:
    """The reading as metric families (names are part of the public interface: dashboards and
    alerts depend on them)."""
    return [
        _labelled(
            "outreach_deliveries",
            "counter",
            "Deliveries that reached a final state, by state, channel and reason.",
            ("state", "channel", "reason"),
            metrics.deliveries.items(),
        ),
        _labelled(
            "outreach_delivery_errors",
            "counter",
            "Final deliveries whose last provider error has this class.",
            ("state", "class"),
            metrics.delivery_errors.items(),
        ),
        _labelled(
            "outreach_deliveries_retrying",
            "gauge",
            "Pending deliveries waiting for another attempt, by the class of their last error.",
            ("class",),
            _by_one(metrics.retrying),
        ),
        _single(
            "outreach_queue_depth",
            "Pending deliveries due now that a worker may claim.",
            metrics.queue_depth,
        ),
        _single(
            "outreach_queue_oldest_due_age_seconds",
            "How long the oldest claimable due delivery has been due (0: none).",
            metrics.oldest_due_age_seconds,
        ),
        _single(
            "outreach_deliveries_in_flight",
            "Deliveries claimed by a worker now.",
            metrics.in_flight,
        ),
        _labelled(
            "outreach_webhook_events",
            "counter",
            "Webhook events stored in the inbox, by event type.",
            ("event_type",),
            _by_one(metrics.webhook_events),
        ),
        _single(
            "outreach_webhook_inbox_pending",
            "Webhook inbox events not yet applied.",
            metrics.inbox_pending,
        ),
        _single(
            "outreach_webhook_inbox_lag_seconds",
            "Age of the oldest webhook inbox event not yet applied (0: drained).",
            metrics.inbox_lag_seconds,
        ),
        _labelled(
            "outreach_captures",
            "counter",
            "Capture outcomes over all forms (captured, duplicate, confirmed, rejected.<reason>).",
            ("outcome",),
            _by_one(metrics.captures),
        ),
        _labelled(
            "outreach_capture_inbox",
            "gauge",
            "Accepted captures not applied yet (contact, ledger, opt-in email), by status.",
            ("status",),
            _by_one(metrics.capture_inbox),
        ),
        _single(
            "outreach_capture_inbox_lag_seconds",
            "Age of the oldest accepted capture not applied yet (0: drained).",
            metrics.capture_inbox_lag_seconds,
        ),
    ]
