"""The API's per-process dependencies: built once in the lifespan (:func:`install`), each read per request through
its own typed FastAPI dependency, so a route's signature says what it touches.

Every getter is ``async`` and only reads ``app.state``: a sync dependency costs a thread-pool hop per request, and the
session POST is the hot path (README "Benchmark").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from faststream.redis import RedisBroker
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from starlette.datastructures import State

from services.api.admission import AdmissionPolicy, RedisSessionAdmission
from services.api.auth import ApiKey, Authenticator
from services.api.auth_limits import FailedAuthGuard
from services.api.cached_flows import CachedFlows
from services.api.client_tokens import ClientTokens
from services.api.credentials import CredentialIssuer
from services.api.fanout import StatusFanout
from services.api.livekit_room_reader import LiveKitRoomReader
from services.api.publishable_keys import PublishableGate
from services.api.repository import ApiRepository, Flow
from services.api.session_core import SessionAdmission, SessionMinting, SessionPolicy, TokenIssuer
from services.api.settings import ApiSettings
from services.api.stream_slots import StreamSlots
from services.api.webhook_store import WebhookStore
from services.runtime.delivery import is_transient
from services.runtime.publishing import BrokerPublisher, EventPublisher
from services.runtime.ttl_cache import TtlCache


def _key_hash_prefix(digest: str) -> str:
    """How a cached API key appears in logs: the start of its stored hash (``api_keys.key_hash``), never the key."""
    return digest[:12]


def install(state: State, settings: ApiSettings, pool: AsyncConnectionPool, redis: Redis, broker: RedisBroker) -> None:
    """Build every per-process dependency from settings and open clients, each on ``state`` under its own name."""
    repo = ApiRepository(pool)
    policy = AdmissionPolicy(settings.max_open_sessions_per_org, settings.admission_lease_s, settings.idempotency_ttl_s)
    # Both caches may answer from an expired entry only while the lookup fails because PostgreSQL is unreachable.
    key_cache: TtlCache[str, ApiKey] = TtlCache(
        settings.auth_cache_ttl_s,
        stale_s=settings.cache_stale_max_s,
        is_outage=is_transient,
        name="api_keys",
        log_key=_key_hash_prefix,
    )
    flow_cache: TtlCache[tuple[str, str], Flow] = TtlCache(
        settings.flow_cache_ttl_s, stale_s=settings.cache_stale_max_s, is_outage=is_transient, name="flows"
    )
    tokens = TokenIssuer(
        settings.livekit_api_key,
        settings.livekit_api_secret,
        settings.token_ttl_s,
        settings.livekit_ws_url,
        settings.token_join_margin_s,
    )
    credentials = CredentialIssuer(settings.agent_credential_secret, settings.agent_credential_margin_s)
    client_tokens = ClientTokens.from_secret(settings.agent_credential_secret, settings.client_token_ttl_s)
    state.settings = settings
    state.redis = redis
    state.repo = repo
    state.admission = RedisSessionAdmission(broker, redis, settings.session_snapshot_ttl_s, policy)
    state.flows = CachedFlows(flow_cache, repo)
    state.tokens = tokens
    state.credentials = credentials
    state.minting = SessionMinting(
        tokens, credentials, SessionPolicy(settings.ready_timeout_s, settings.admission_retry_after_s), client_tokens
    )
    guard = FailedAuthGuard(
        settings.auth_failures_per_window,
        settings.auth_failure_window_s,
        settings.auth_miss_ttl_s,
        lookups_per_s=settings.auth_lookups_per_s,
    )
    state.auth = Authenticator(repo, key_cache, guard)
    state.client_tokens = client_tokens
    state.publishable = PublishableGate(redis, settings.publishable_rate_per_min)
    state.fanout = StatusFanout(redis, settings.sse_queue_size)
    state.stream_slots = StreamSlots(settings.max_sse_streams_per_org, settings.admission_retry_after_s)
    state.publisher = BrokerPublisher(broker)
    state.webhook_store = WebhookStore(pool, settings.secret_seal())
    state.room_reader = LiveKitRoomReader(  # for operators' presence checks; connects on first use
        settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret, settings.livekit_api_timeout_s
    )


async def get_settings(request: Request) -> ApiSettings:
    """The API's settings."""
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    """The shared Redis client (its pool waits, bounded, for a free connection)."""
    redis: Redis = request.app.state.redis
    return redis


async def get_repo(request: Request) -> ApiRepository:
    """The API's PostgreSQL repository (flows, keys, session rows)."""
    repo: ApiRepository = request.app.state.repo
    return repo


async def get_admission(request: Request) -> SessionAdmission:
    """Session admission in Redis: idempotency, the organisation's cap, the announcement, snapshots."""
    admission: SessionAdmission = request.app.state.admission
    return admission


async def get_flows(request: Request) -> CachedFlows:
    """Flows through the brief in-process cache."""
    flows: CachedFlows = request.app.state.flows
    return flows


async def get_tokens(request: Request) -> TokenIssuer:
    """LiveKit credentials and TTL for participant and watcher tokens."""
    tokens: TokenIssuer = request.app.state.tokens
    return tokens


async def get_credentials(request: Request) -> CredentialIssuer:
    """Mints and verifies the agent credentials of sessions."""
    credentials: CredentialIssuer = request.app.state.credentials
    return credentials


async def get_minting(request: Request) -> SessionMinting:
    """What a new session's answer is minted with (one dependency for the hot path's three)."""
    minting: SessionMinting = request.app.state.minting
    return minting


async def get_fanout(request: Request) -> StatusFanout:
    """The process's fan-out of status changes to SSE listeners."""
    fanout: StatusFanout = request.app.state.fanout
    return fanout


async def get_stream_slots(request: Request) -> StreamSlots:
    """The process's count of open SSE streams per organisation."""
    slots: StreamSlots = request.app.state.stream_slots
    return slots


async def get_publisher(request: Request) -> EventPublisher:
    """Publishes contract events to their streams."""
    publisher: EventPublisher = request.app.state.publisher
    return publisher


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RepoDep = Annotated[ApiRepository, Depends(get_repo)]
AdmissionDep = Annotated[SessionAdmission, Depends(get_admission)]
FlowsDep = Annotated[CachedFlows, Depends(get_flows)]
TokensDep = Annotated[TokenIssuer, Depends(get_tokens)]
CredentialsDep = Annotated[CredentialIssuer, Depends(get_credentials)]
MintingDep = Annotated[SessionMinting, Depends(get_minting)]
FanoutDep = Annotated[StatusFanout, Depends(get_fanout)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
StreamSlotsDep = Annotated[StreamSlots, Depends(get_stream_slots)]
