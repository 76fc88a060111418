"""Real servers for the whole suite: Redis and PostgreSQL found by devstack (env, testcontainers, embedded)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devstack.servers import postgres_server, redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server for this test run."""
    with redis_server() as handle:
        yield handle.url


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on a real PostgreSQL server, dropped after the run."""
    with postgres_server() as handle:
        name = f"agentready_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(handle.url, name)
        finally:
            with psycopg.connect(handle.url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
