"""Redis and PostgreSQL in throw-away containers (testcontainers), when a Docker engine answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

REDIS_IMAGE = "redis:7-alpine"
POSTGRES_IMAGE = "postgres:18-alpine"  # the same major version as the embedded server


@contextmanager
def redis_container() -> Iterator[str]:
    """Run a Redis container; yield its ``redis://`` URL; remove it on exit."""
    from testcontainers.community.redis import RedisContainer  # lazily: dev-only dependency

    with RedisContainer(REDIS_IMAGE) as container:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(container.port)}/0"


@contextmanager
def postgres_container(database: str) -> Iterator[str]:
    """Run a PostgreSQL container with ``database``; yield a psycopg-ready ``postgresql://`` URL."""
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, dbname=database, driver=None) as container:
        yield str(container.get_connection_url(driver=None))
