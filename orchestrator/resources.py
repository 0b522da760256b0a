"""Long-lived resources built once per process (STYLE.md rule 8)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from channels.messenger import MessengerClient, SlidingWindowLimiter
from channels.messenger.client import build_http_clients
from channels.messenger.ratelimit import AllOf
from orchestrator.clock import Clock, SystemClock
from orchestrator.crypto import KeyRing
from orchestrator.db import create_engine, session_factory
from orchestrator.metrics import MetricsCache
from orchestrator.observability import ProcessMetrics
from orchestrator.send_budgets import PAGE_BUDGET_PREFIX, Budget, KeyedBudget, SendBudgets
from orchestrator.settings import Settings, resolve_secret_keys
from orchestrator.webhooks import InboxBatcher, RoutingCache


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    clock: Clock
    messenger: MessengerClient
    email: SmtpSender
    process_metrics: ProcessMetrics
    metrics_cache: MetricsCache
    send_budgets: SendBudgets
    owns_engine: bool = field(default=True)
    webhook_routing: RoutingCache = field(default_factory=RoutingCache)
    inbox_batcher: InboxBatcher = field(default_factory=InboxBatcher)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        if self.owns_engine:
            await self.engine.dispose()


def build_resources(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    clock: Clock | None = None,
    messenger: MessengerClient | None = None,
    email: SmtpSender | None = None,
) -> Resources:
    """Tests pass their own engine (and a session factory bound to a rolled-back connection)
    and channel clients pointed at the emulators."""
    current, retired = resolve_secret_keys(settings)
    the_engine = engine or create_engine(settings)
    process_metrics = ProcessMetrics()
    closers: list[Callable[[], Awaitable[None]]] = []
    the_sessions = sessions or session_factory(the_engine)
    budgets = SendBudgets(the_sessions)
    if messenger is None:
        # Several small clients ("lanes"): one big httpx pool collapses under load
        # (encode/httpx#3215); at 100 ms of latency a Page needs ~30-45 requests in flight.
        lanes = build_http_clients(max_in_flight=settings.graph_max_in_flight)
        closers.extend(lane.aclose for lane in lanes)
        messenger = MessengerClient(
            lanes,
            graph_api_url=settings.graph_api_url,
            max_in_flight=settings.graph_max_in_flight,
            # The Page's global budget (send_budgets), then this process's pace within it.
            rate_limiter=AllOf(
                KeyedBudget(budgets, PAGE_BUDGET_PREFIX, Budget(settings.page_send_rate)),
                SlidingWindowLimiter(settings.page_send_rate),
            ),
            on_response=process_metrics.on_graph_response,
        )
    if email is None:
        email = SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            pool_size=settings.smtp_pool_size,
            max_per_second=settings.smtp_max_per_second,
            on_send=process_metrics.on_smtp_send,
        )
        closers.append(email.close)
    the_clock = clock or SystemClock(settings.clock_offset)
    return Resources(
        settings=settings,
        engine=the_engine,
        sessions=the_sessions,
        send_budgets=budgets,
        keyring=KeyRing(current, retired),
        clock=the_clock,
        messenger=messenger,
        email=email,
        owns_engine=engine is None,
        closers=closers,
        process_metrics=process_metrics,
        metrics_cache=MetricsCache(
            timedelta(seconds=settings.metrics_cache_seconds), clock=the_clock.now
        ),
    )
