"""``python -m services.session_store [run|migrate]``."""

from __future__ import annotations

from services.runtime.service_cli import consumer_cli
from services.runtime.settings_errors import refused_settings
from services.session_store.app import SERVICE, create_app
from services.session_store.migrations import MIGRATIONS
from services.session_store.settings import SessionStoreSettings

cli = consumer_cli(
    service=SERVICE,
    about="The session store: the only writer of session status.",
    work="Consume lifecycle events and keep the sessions table right",
    settings=SessionStoreSettings,
    create_app=create_app,
    migrations=MIGRATIONS,
)

if __name__ == "__main__":
    with refused_settings(SERVICE):
        cli()
