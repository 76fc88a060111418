"""``python -m services.api [run|migrate|create-key]``."""

from __future__ import annotations

import asyncio

import typer
import uvicorn

from services.api import admin
from services.api.app import SERVICE, create_app
from services.api.settings import AdminSettings, ApiSettings
from services.runtime.logging import configure_logging

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
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )


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
) -> None:
    """Create an API key for an organisation and print it once, alone on stdout (only its hash is stored)."""
    settings = AdminSettings()
    configure_logging(SERVICE, "WARNING", settings.log_json)
    try:
        created, org_id = asyncio.run(admin.create_key(settings.database_url, org, key))
    except (ValueError, admin.KeyConflictError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"API key for organisation {org!r} ({org_id}); it is not shown again:", err=True)
    typer.echo(created)


if __name__ == "__main__":
    cli()
