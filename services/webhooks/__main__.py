"""``python -m services.webhooks [run|migrate]``."""

from __future__ import annotations

import asyncio

import typer

from services.runtime.logging import configure_logging
from services.runtime.metrics_server import MetricsOptions
from services.runtime.migrations import migrate as apply_schema
from services.runtime.running import run_app
from services.webhooks.app import SERVICE, create_app
from services.webhooks.migrations import MIGRATIONS
from services.webhooks.settings import WebhookSettings

cli = typer.Typer(help="The webhook sender: customers' signed lifecycle webhooks.", no_args_is_help=False)


@cli.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Turn status changes into webhooks and deliver them (default command)."""
    if ctx.invoked_subcommand is None:
        run()


@cli.command()
def run() -> None:
    """Consume status changes and deliver webhooks until SIGTERM/SIGINT."""
    settings = WebhookSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    run_app(create_app(settings), metrics=MetricsOptions.from_settings(settings.metrics_host, settings.metrics_port))


@cli.command()
def migrate() -> None:
    """Apply the webhook sender's schema migrations and exit."""
    settings = WebhookSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    applied = asyncio.run(apply_schema(settings.database_url, SERVICE, MIGRATIONS))
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


if __name__ == "__main__":
    cli()
