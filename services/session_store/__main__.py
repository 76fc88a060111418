"""``python -m services.session_store [run|migrate]``."""

from __future__ import annotations

import asyncio

import typer

from services.runtime import tracing
from services.runtime.logging import configure_logging
from services.runtime.metrics_server import MetricsOptions
from services.runtime.migrations import migrate as apply_schema
from services.runtime.running import run_app
from services.session_store.app import SERVICE, create_app
from services.session_store.migrations import MIGRATIONS
from services.session_store.settings import SessionStoreSettings

cli = typer.Typer(help="The session store: the only writer of session status.", no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Consume lifecycle events and keep the sessions table right (default command)."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Consume lifecycle events until SIGTERM/SIGINT."""
    settings = SessionStoreSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    tracing.configure(SERVICE)
    run_app(create_app(settings), metrics=MetricsOptions.from_settings(settings.metrics_host, settings.metrics_port))


@cli.command()
def migrate() -> None:
    """Apply the session store's schema migrations and exit."""
    settings = SessionStoreSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)

    applied = asyncio.run(apply_schema(settings.database_url, SERVICE, MIGRATIONS))
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


if __name__ == "__main__":
    cli()
