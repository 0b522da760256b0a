"""The `outreach` command (DESIGN section 9). Every command reads the same settings."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator import apikeys, channel_pauses, logs, migrate, workspaces
from orchestrator.app import create_app
from orchestrator.bootstrap import ensure_default_workspace
from orchestrator.db import transaction
from orchestrator.errors import OutreachError
from orchestrator.resources import Resources, build_resources
from orchestrator.scheduler import EmbeddedScheduler, register_jobs
from orchestrator.settings import SettingsError, get_settings

T = TypeVar("T")
log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
workspace_app = typer.Typer(no_args_is_help=True, help="Manage workspaces (tenants).")
apikey_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(workspace_app, name="workspace")
app.add_typer(apikey_app, name="apikey")
email_app = typer.Typer(no_args_is_help=True, help="The email channel.")
app.add_typer(email_app, name="email")


def _resources() -> Resources:
    try:
        return build_resources(get_settings())
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(work: Callable[[Resources], Awaitable[T]]) -> T:
    resources = _resources()

    async def main() -> T:
        try:
            return await work(resources)
        finally:
            await resources.close()

    try:
        return asyncio.run(main())
    except OutreachError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


def _in_transaction(
    resources: Resources, work: Callable[[AsyncSession], Awaitable[T]]
) -> Awaitable[T]:
    async def run() -> T:
        async with transaction(resources.sessions) as session:
            return await work(session)

    return run()


@app.command("migrate")
def migrate_command() -> None:
    """Apply database migrations up to the newest version."""

    async def work(resources: Resources) -> str | None:
        await migrate.upgrade(resources.engine)
        return await migrate.current_revision(resources.engine)

    revision = _run(work)
    typer.echo(f"database at revision {revision}")


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Migrate, create the default workspace on an empty database, and run the API (with the
    embedded scheduler)."""
    settings = get_settings()
    logs.configure_logging(settings)

    async def prepare(resources: Resources) -> apikeys.IssuedKey | None:
        await migrate.upgrade(resources.engine)
        return await _in_transaction(
            resources,
            lambda session: ensure_default_workspace(session, now=resources.clock.now()),
        )

    issued = _run(prepare)
    if issued is not None:
        # Printed once, to the terminal only: the key is never logged or stored in clear.
        typer.echo(
            "\nCreated workspace 'default' and its first API key (shown only this once):\n\n"
            f"    {issued.key}\n\n"
            "Use it as:  Authorization: Bearer <key>\n",
        )
        sys.stdout.flush()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        # Our handler on the root logger formats uvicorn's lines too; its access log is replaced
        # by ours, which never writes a raw path (orchestrator.api.access_log).
        log_config=None,
        access_log=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
    )


@app.command("worker")
def worker_command() -> None:
    """Run the scheduler jobs (claim and send due deliveries, start scheduled and cron runs, plan
    runs, sweep holds and tokens, apply the webhook inbox) without the API. Any number of workers
    may share one PostgreSQL database."""

    logs.configure_logging(get_settings())

    async def work(resources: Resources) -> None:
        if not await migrate.is_current(resources.engine):
            typer.echo("error: the database is not migrated; run `outreach migrate`", err=True)
            raise typer.Exit(2)
        scheduler = EmbeddedScheduler(resources, kind="worker")
        register_jobs(scheduler, resources)
        port = resources.settings.worker_metrics_port
        if port is not None:
            # A worker serves no API; its latency histograms get a port of their own.
            start_http_server(port, registry=resources.process_metrics.registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await scheduler.start()
        log.info(
            "worker running; SIGINT or SIGTERM stops it", extra={"worker_id": scheduler.worker.id}
        )
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
            log.info("worker stopped", extra={"worker_id": scheduler.worker.id})

    _run(work)


@app.command("demo")
def demo_command(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Exit after printing the funnel.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port of the demo's API.", min=1, max=65535)] = 8000,
    contacts: Annotated[int, typer.Option(help="How many contacts to create.", min=1)] = 1000,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its database and emails (reset each run).")
    ] = Path("outreach-demo"),
) -> None:
    """Run a whole campaign locally: SQLite, an SMTP server that keeps .eml files, the Graph API
    emulator, 1,000 contacts, emulated people; print the funnel, then keep serving."""
    # Imported here: the demo brings the emulator and an SMTP server that serve and worker never
    # need.
    from orchestrator import demo  # noqa: PLC0415

    options = demo.Options(data_dir=data_dir, port=port, contacts=contacts, serve=not no_serve)
    raise typer.Exit(demo.run(options))


@workspace_app.command("create")
def workspace_create(name: Annotated[str, typer.Argument(help="Workspace name.")]) -> None:
    """Create a workspace and print its id."""

    async def work(resources: Resources) -> str:
        async def create(session: AsyncSession) -> str:
            ws = await workspaces.create_workspace(session, name=name, now=resources.clock.now())
            return ws.id

        return await _in_transaction(resources, create)

    typer.echo(_run(work))


@workspace_app.command("list")
def workspace_list() -> None:
    """List workspaces: id and name."""

    async def work(resources: Resources) -> list[tuple[str, str]]:
        async def read(session: AsyncSession) -> list[tuple[str, str]]:
            return await workspaces.list_workspaces(session)

        return await _in_transaction(resources, read)

    for ws_id, ws_name in _run(work):
        typer.echo(f"{ws_id}\t{ws_name}")


@apikey_app.command("create")
def apikey_create(
    workspace: Annotated[str, typer.Argument(help="Workspace name or id.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Create an API key for a workspace; the key is printed once, here."""

    async def work(resources: Resources) -> apikeys.IssuedKey:
        async def create(session: AsyncSession) -> apikeys.IssuedKey:
            ws = await workspaces.find_workspace(session, name_or_id=workspace)
            return await apikeys.create_api_key(
                session, workspace_id=ws.id, now=resources.clock.now(), name=name
            )

        return await _in_transaction(resources, create)

    issued = _run(work)
    typer.echo(f"key id: {issued.key_id}", err=True)
    typer.echo(issued.key)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke an API key; requests with it get 401 from now on."""

    async def work(resources: Resources) -> None:
        async def revoke(session: AsyncSession) -> None:
            await apikeys.revoke_api_key(session, key_id=key_id, now=resources.clock.now())

        await _in_transaction(resources, revoke)

    _run(work)
    typer.echo(f"revoked {key_id}")


@email_app.command("resume")
def email_resume() -> None:
    """Resume email sending after a pause (fix the relay settings first)."""

    async def work(resources: Resources) -> bool:
        async def resume(session: AsyncSession) -> bool:
            return await channel_pauses.resume(session, channel=channel_pauses.EMAIL)

        return await _in_transaction(resources, resume)

    typer.echo("email sending resumed" if _run(work) else "email sending was not paused")


def main() -> None:
    app()
