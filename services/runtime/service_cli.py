"""The command line of a stream consumer: ``run`` (also the default) and, for one that owns tables, ``migrate``.

Each service's ``__main__`` names its settings, its app and its migrations; what running means is the same for all:
logging, tracing, the app until SIGTERM/SIGINT, and its metrics on ``METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import typer
from faststream import FastStream

from services.runtime import tracing
from services.runtime.logging import configure_logging
from services.runtime.metrics_server import MetricsOptions
from services.runtime.migrations import Migration
from services.runtime.migrations import migrate as apply_schema
from services.runtime.running import run_app


class ConsumerSettings(Protocol):
    """What running a consumer reads from its settings."""

    @property
    def log_level(self) -> str: ...
    @property
    def log_json(self) -> bool | None: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...


class StoringSettings(ConsumerSettings, Protocol):
    """A consumer that owns tables: where they are."""

    @property
    def database_url(self) -> str: ...


C = TypeVar("C", bound=ConsumerSettings)
S = TypeVar("S", bound=StoringSettings)


def run_consumer(service: str, settings: C, create_app: Callable[[C], FastStream]) -> None:
    """Run ``create_app(settings)`` until SIGTERM/SIGINT, logging and tracing as ``service``, serving its metrics."""
    configure_logging(service, settings.log_level, settings.log_json)
    tracing.configure(service)
    run_app(create_app(settings), metrics=MetricsOptions.from_settings(settings.metrics_host, settings.metrics_port))


def consumer_cli(
    *,
    service: str,
    about: str,
    work: str,
    settings: Callable[[], S],
    create_app: Callable[[S], FastStream],
    migrations: Sequence[Migration],
) -> typer.Typer:
    """``run`` (``work`` until SIGTERM/SIGINT; also what no command does) and ``migrate`` for ``service``."""
    cli = typer.Typer(help=about, no_args_is_help=False)

    def run() -> None:
        run_consumer(service, settings(), create_app)

    def migrate() -> None:
        values = settings()
        configure_logging(service, values.log_level, values.log_json)
        applied = asyncio.run(apply_schema(values.database_url, service, migrations))
        typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")

    def main(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            run()

    cli.callback(invoke_without_command=True)(main)
    cli.command("run", help=f"{work} until SIGTERM/SIGINT.")(run)
    cli.command("migrate", help=f"Apply the {service} schema migrations and exit.")(migrate)
    return cli
