"""``python -m services.dispatcher``: consume session requests and dispatch agents until SIGTERM."""

from __future__ import annotations

import asyncio

from services.dispatcher.app import SERVICE, create_app
from services.dispatcher.settings import DispatcherSettings
from services.runtime.logging import configure_logging


def main() -> None:
    """Run the dispatcher."""
    settings = DispatcherSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    asyncio.run(create_app(settings).run())


if __name__ == "__main__":
    main()
