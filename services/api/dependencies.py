"""Per-process resources of the API, built in the lifespan and handed to routes explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from services.api.auth import Authenticator
from services.api.credentials import CredentialIssuer
from services.api.fanout import StatusFanout
from services.api.outbox import RedisSessionOutbox
from services.api.repository import ApiRepository, Flow
from services.api.sessions import SessionPolicy, TokenIssuer
from services.api.settings import ApiSettings
from services.runtime.publishing import BrokerPublisher
from services.runtime.ttl_cache import TtlCache


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
    credentials: CredentialIssuer
    policy: SessionPolicy
    auth: Authenticator
    fanout: StatusFanout
    publisher: BrokerPublisher
    flow_cache: TtlCache[tuple[str, str], Flow]


async def get_resources(request: Request) -> Resources:
    """FastAPI dependency: the process's resources (async: a sync dependency costs a thread-pool hop per request)."""
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]

# Declared for the OpenAPI document ("Authorize" in /docs); the header itself is parsed by the Authenticator,
# which explains what is wrong with it.
_bearer = HTTPBearer(auto_error=False, description="Your organisation's API key: `Authorization: Bearer <key>`")


async def get_org_id(
    request: Request,
    resources: ResourcesDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The caller's organisation, from its API key (401 when the key is missing or unknown)."""
    return await resources.auth.org_for(request.headers.get("authorization"))


OrgDep = Annotated[str, Depends(get_org_id)]
