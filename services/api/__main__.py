"""``python -m services.api``: serve the HTTP API with uvicorn until SIGTERM."""

from __future__ import annotations

import uvicorn

from services.api.app import SERVICE, create_app
from services.api.settings import ApiSettings
from services.runtime.logging import configure_logging


def main() -> None:
    """Run the API server."""
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


if __name__ == "__main__":
    main()
