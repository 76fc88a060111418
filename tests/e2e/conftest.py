"""The whole system as separate processes (devstack.stack's ``e2e`` profile) on the suite's Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devstack.stack import SERVICES, StackHandle
from tests.stack_fixtures import running_stack, separate_database, with_redis_db

Stack = StackHandle  # what the e2e tests annotate their fixture with
SERVICES_WITHOUT_AGENT = ("session_store", "dispatcher", "api")
__all__ = ["SERVICES", "Stack", "running_stack", "with_redis_db"]


@pytest.fixture(scope="session")
async def stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """The simulator and the four services, for the whole run."""
    async with running_stack(redis_url, database_url, SERVICES) as stack:
        yield stack


@pytest.fixture(scope="module")
async def stack_without_agent(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    """Simulator, api, session store and dispatcher but no agent: jobs are dropped, sessions must expire.

    Its own Redis and PostgreSQL databases: the session-wide stack's dispatcher and agent never see its
    requests, and that stack's session store never expires its sessions (announcing it on the other Redis).
    """
    async with (
        separate_database(database_url) as own_database,
        running_stack(with_redis_db(redis_url, 1), own_database, SERVICES_WITHOUT_AGENT) as stack,
    ):
        yield stack
