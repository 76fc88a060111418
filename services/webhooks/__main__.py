"""``python -m services.webhooks [run|migrate]``."""

from __future__ import annotations

from services.runtime.service_cli import consumer_cli
from services.webhooks.app import SERVICE, create_app
from services.webhooks.migrations import MIGRATIONS
from services.webhooks.settings import WebhookSettings

cli = consumer_cli(
    service=SERVICE,
    about="The webhook sender: customers' signed lifecycle webhooks.",
    work="Turn status changes into webhooks and deliver them",
    settings=WebhookSettings,
    create_app=create_app,
    migrations=MIGRATIONS,
)

if __name__ == "__main__":
    cli()
