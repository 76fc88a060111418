"""``python -m services.webhooks [run|migrate|reseal-secrets]``."""

from __future__ import annotations

import asyncio

import typer

from services.runtime.service_cli import consumer_cli
from services.runtime.settings_errors import refused_settings
from services.webhooks.app import SERVICE, create_app
from services.webhooks.migrations import MIGRATIONS
from services.webhooks.resealing import reseal_secrets
from services.webhooks.settings import WebhookSettings

cli = consumer_cli(
    service=SERVICE,
    about="The webhook sender: customers' signed lifecycle webhooks.",
    work="Turn status changes into webhooks and deliver them",
    settings=WebhookSettings,
    create_app=create_app,
    migrations=MIGRATIONS,
)


@cli.command("reseal-secrets")
def reseal() -> None:
    """Seal every stored webhook secret under the first WEBHOOK_SECRET_KEYS key: those stored before sealing was on,
    and those sealed under an older key (run it before that key leaves the list). Exits 1 if a secret opens with
    none of the keys."""
    settings = WebhookSettings()
    try:
        done = asyncio.run(reseal_secrets(settings.database_url, settings.secret_seal()))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{done.endpoints} endpoints, {done.changed} sealed again, {len(done.unreadable)} unreadable")
    if done.unreadable:
        typer.echo(
            "these endpoints' secrets open with none of WEBHOOK_SECRET_KEYS (add the key they were sealed with, or "
            f"rotate their secrets): {', '.join(done.unreadable)}",
            err=True,
        )
        raise typer.Exit(1)


if __name__ == "__main__":
    with refused_settings(SERVICE):
        cli()
