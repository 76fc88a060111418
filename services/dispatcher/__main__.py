"""``python -m services.dispatcher``: consume session requests and dispatch agents until SIGTERM."""

from __future__ import annotations

from services.dispatcher.app import SERVICE, create_app
from services.dispatcher.settings import DispatcherSettings
from services.runtime import tracing
from services.runtime.logging import configure_logging
from services.runtime.metrics_server import MetricsOptions
from services.runtime.running import run_app


def main() -> None:
    """Run the dispatcher."""
    settings = DispatcherSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    tracing.configure(SERVICE)
    run_app(create_app(settings), metrics=MetricsOptions.from_settings(settings.metrics_host, settings.metrics_port))


if __name__ == "__main__":
    main()
