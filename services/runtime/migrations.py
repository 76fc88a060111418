"""Versioned SQL migrations: each owning service applies its own, once, under an advisory lock.

They run in one place: each service's ``migrate`` command (``deploy/docker/entrypoint.sh migrate`` runs both, the k8s
migrate Job runs that), which the dev stack also runs before anything starts. The services apply them at start-up
only in DEV_MODE, as a convenience for stacks started without that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
import structlog
from psycopg import AsyncConnection, sql

log = structlog.get_logger(__name__)

_LOCK_KEY = 0x6167656E74  # "agent": one cluster-wide lock so concurrent replicas migrate one at a time

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    service text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, version)
)
"""


@dataclass(frozen=True)
class Migration:
    """One forward-only schema change."""

    version: int
    name: str
    sql: str


async def apply_migrations(conn: AsyncConnection, service: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the migrations of ``service`` not applied yet, in order; return the versions applied."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(_BOOKKEEPING)
        cur = await conn.execute("SELECT version FROM schema_migrations WHERE service = %s", (service,))
        done = {row[0] for row in await cur.fetchall()}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            await conn.execute(sql.SQL(migration.sql))
            await conn.execute(
                "INSERT INTO schema_migrations (service, version, name) VALUES (%s, %s, %s)",
                (service, migration.version, migration.name),
            )
            applied_now.append(migration.version)
            log.info("migration_applied", service=service, version=migration.version, name=migration.name)
    return applied_now


async def migrate(database_url: str, service: str, migrations: Sequence[Migration]) -> list[int]:
    """Connect to ``database_url`` and apply ``service``'s migrations not applied yet; return their versions."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await apply_migrations(conn, service, migrations)
