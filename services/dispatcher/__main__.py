"""``python -m services.dispatcher``: consume session requests and dispatch agents until SIGTERM."""

from __future__ import annotations

from services.dispatcher.app import SERVICE, create_app
from services.dispatcher.settings import DispatcherSettings
from services.runtime.service_cli import run_consumer
from services.runtime.settings_errors import refused_settings


def main() -> None:
    """Run the dispatcher."""
    run_consumer(SERVICE, DispatcherSettings(), create_app)


if __name__ == "__main__":
    with refused_settings(SERVICE):
        main()
