"""Per-process resources of the API, built in the lifespan and handed to routes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.api.outbox import RedisSessionOutbox
from services.api.repository import ApiRepository
from services.api.sessions import TokenIssuer
from services.api.settings import ApiSettings


@dataclass
class Resources:
    """Everything routes need; one instance per process, on ``app.state.resources``."""

    settings: ApiSettings
    pool: AsyncConnectionPool
    redis: Redis
    broker: RedisBroker
    repo: ApiRepository
    outbox: RedisSessionOutbox
    issuer: TokenIssuer


def get_resources(request: Request) -> Resources:
    """FastAPI dependency: the process's resources."""
    resources: Resources = request.app.state.resources
    return resources


def get_org_id(resources: Annotated[Resources, Depends(get_resources)]) -> str:
    """The caller's organisation (one default organisation until API keys exist)."""
    return resources.settings.default_org_id


ResourcesDep = Annotated[Resources, Depends(get_resources)]
OrgDep = Annotated[str, Depends(get_org_id)]
