"""``python -m services.api [run|migrate|create-key|ensure-flow]``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from uvicorn.config import STARTUP_FAILURE

from services.api import admin
from services.api.app import SERVICE, create_app
from services.api.listener import ApiServer
from services.api.livekit_room_reader import PresenceSettings, presence_check
from services.api.presence import LiveKitUnavailableError
from services.api.scopes import ALL_SCOPES, DEFAULT_SCOPES
from services.api.serving import server_config
from services.api.settings import AdminSettings, ApiSettings
from services.runtime import tracing
from services.runtime.logging import configure_logging
from services.runtime.settings_errors import refused_settings

_SCOPE_HELP = f"secret: what it may do, repeatable: {' '.join(ALL_SCOPES)} (default: {' '.join(DEFAULT_SCOPES)})"

cli = typer.Typer(help="The HTTP API for frontends and ops.", no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Serve the HTTP API (default command)."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Serve the HTTP API with uvicorn until SIGTERM."""
    settings = ApiSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    tracing.configure(SERVICE)
    server = ApiServer(server_config(create_app(settings), settings), freeze_heap=True)
    server.run()
    if not server.started:  # as uvicorn.run: a failed start-up is an exit code, not a silent 0
        raise typer.Exit(STARTUP_FAILURE)


@cli.command()
def migrate() -> None:
    """Apply the API's schema migrations and exit."""
    settings = AdminSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    applied = asyncio.run(admin.migrate(settings.database_url))
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date", err=True)


@cli.command("create-key")
def create_key(
    org: str = typer.Option(..., "--org", help="organisation name (created if it does not exist)"),
    key: str | None = typer.Option(None, "--key", help="use this key instead of a random one (idempotent)"),
    publishable: Annotated[
        bool, typer.Option("--publishable", help="a browser-safe pk_ key: starts sessions of --flow from --origin")
    ] = False,
    flow: Annotated[
        list[str] | None, typer.Option("--flow", help="publishable: a flow it may start sessions of (repeatable)")
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option("--origin", help="publishable: a page origin it is accepted from, e.g. https://app.example"),
    ] = None,
    scope: Annotated[list[str] | None, typer.Option("--scope", help=_SCOPE_HELP)] = None,
) -> None:
    """Create an API key for an organisation and print it once, alone on stdout (only its hash is stored)."""
    settings = AdminSettings()
    configure_logging(SERVICE, "WARNING", settings.log_json)
    request = admin.KeyRequest(publishable, scope or None, flow or (), origin or ())
    try:
        created, org_id = asyncio.run(admin.create_key(settings.database_url, org, key, request))
    except (ValueError, admin.KeyConflictError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    kind = "publishable key" if publishable else "API key"
    typer.echo(f"{kind} for organisation {org!r} ({org_id}); it is not shown again:", err=True)
    typer.echo(created)


@cli.command("presence")
def presence(session_id: str = typer.Argument(..., help="the session's id")) -> None:
    """Is the agent in the session's room right now (asks LiveKit once): JSON as GET /api/sessions/{id}/presence
    answers; exit code 1 when there is no such session, 3 when LiveKit does not answer."""
    settings = PresenceSettings()
    configure_logging(SERVICE, "WARNING", settings.log_json)
    try:
        found = asyncio.run(presence_check(settings, session_id))
    except LiveKitUnavailableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    if found is None:
        typer.echo(f"error: session {session_id!r} not found (no recorded session has that id)", err=True)
        raise typer.Exit(1)
    typer.echo(found.model_dump_json(by_alias=True, indent=2))


@cli.command("ensure-flow")
def ensure_flow(
    org: str = typer.Option(..., "--org", help="organisation name (created if it does not exist)"),
    name: str = typer.Option(..., "--name", help="the flow's name: an existing flow of that name is kept"),
    greeting: str = typer.Option("Hello! How can I help you today?", "--greeting", help="for a new flow"),
) -> None:
    """Print the id of the organisation's flow called NAME, creating it first when there is none."""
    settings = AdminSettings()
    configure_logging(SERVICE, "WARNING", settings.log_json)
    typer.echo(asyncio.run(admin.ensure_flow(settings.database_url, org, name, greeting)))


if __name__ == "__main__":
    with refused_settings(SERVICE):
        cli()
