"""The ASGI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator.api import (
    access_log,
    campaigns,
    capture,
    contacts,
    email_events,
    forms,
    health,
    imports,
    links,
    messaging,
    metrics,
    pages,
    problems,
    ui,
    webhooks,
    workspace,
)
from orchestrator.imports.runner import ImportRunner
from orchestrator.resources import Resources, build_resources
from orchestrator.scheduler import EmbeddedScheduler, register_jobs
from orchestrator.settings import Settings, get_settings


def _quiet_http_loggers() -> None:
    # httpx logs full request URLs at INFO; keep it at WARNING so nothing secret-bearing is logged.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def create_app(
    settings: Settings | None = None,
    *,
    resources: Resources | None = None,
    run_scheduler: bool | None = None,
) -> FastAPI:
    settings = settings or (resources.settings if resources else get_settings())
    _quiet_http_loggers()
    scheduler_wanted = settings.embedded_scheduler if run_scheduler is None else run_scheduler

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        res = resources or build_resources(settings)
        app.state.resources = res
        scheduler = EmbeddedScheduler(res, kind="serve") if scheduler_wanted else None
        if scheduler is not None:
            register_jobs(scheduler, res)
            await scheduler.start()
        try:
            yield
        finally:
            await runner.stop()
            if scheduler is not None:
                await scheduler.stop()
            if owned:
                await res.close()

    app = FastAPI(
        title="Outreach orchestrator",
        version="0.1.0",
        summary="Messenger inside the 24-hour window, email with m.me buttons outside it.",
        lifespan=lifespan,
    )
    if resources is not None:
        app.state.resources = resources
    runner = ImportRunner()
    app.state.import_runner = runner
    problems.install(app)
    app.add_middleware(
        problems.BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        path_limits={("POST", imports.IMPORTS_PATH): settings.import_max_bytes},
    )
    # Outermost, so that its status and duration include every other middleware.
    app.add_middleware(access_log.AccessLog)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Early: routes are tried in order, and the public capture endpoints take the most traffic.
    app.include_router(capture.router)
    app.include_router(workspace.router)
    app.include_router(imports.router)  # before contacts: /v1/contacts/{id} would take its paths
    app.include_router(contacts.router)
    app.include_router(pages.apps_router)
    app.include_router(pages.pages_router)
    app.include_router(messaging.router)
    app.include_router(campaigns.router)
    app.include_router(email_events.router)
    app.include_router(webhooks.router)
    app.include_router(links.router)
    app.include_router(forms.router)
    app.include_router(ui.router)
    return app
