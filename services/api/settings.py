"""Settings of the API, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.api.cors import allowed_origins
from services.runtime.secrets import refuse_weak_secret
from services.runtime.settings import DatabaseSettings, LiveKitSettings, SealingSettings

DEV_AGENT_CREDENTIAL_SECRET = "dev-agent-credential-secret-change-me"


class AdminSettings(DatabaseSettings):
    """What the admin commands (migrate, create-key) need: only the database."""


class ApiSettings(DatabaseSettings, LiveKitSettings, SealingSettings):
    """HTTP server, PostgreSQL, tokens, readiness deadlines, admission and auth caches."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    probe_timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="how long /readyz waits for Redis and for PostgreSQL (checked at once)"
    )
    token_ttl_s: int = Field(default=600, ge=30, le=3600, description="lifetime of a watcher token")
    token_join_margin_s: int = Field(
        default=30,
        ge=5,
        le=600,
        description="a user's participant token is valid until its session's readiness deadline plus this: long "
        "enough to join (connected participants get fresh tokens from LiveKit), not to rejoin an ended session",
    )
    livekit_api_timeout_s: float = Field(
        default=3.0, gt=0, le=30, description="how long the presence check waits for LiveKit's server API"
    )
    ready_timeout_s: float = Field(default=30.0, gt=0, le=600, description="default readiness deadline of a session")
    session_snapshot_ttl_s: int = Field(default=3600, ge=60)
    idempotency_ttl_s: int = Field(default=600, ge=1, description="how long an Idempotency-Key is remembered")
    max_open_sessions_per_org: int = Field(default=100, ge=1, description="sessions not yet terminal, per org")
    admission_lease_s: int = Field(
        default=7200, ge=60, description="an admission slot not released by the session store goes stale after this"
    )
    admission_retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 429 over the cap")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="larger request bodies get 413")
    auth_cache_ttl_s: float = Field(default=10.0, ge=0, description="how long a key -> org lookup is reused")
    flow_cache_ttl_s: float = Field(default=2.0, ge=0, description="how long the hot path reuses a flow it read")
    cache_stale_max_s: float = Field(
        default=600.0,
        ge=0,
        description="while PostgreSQL is unreachable, how long past their TTL cached flows and keys are still used",
    )
    agent_credential_secret: str = DEV_AGENT_CREDENTIAL_SECRET
    agent_credential_margin_s: int = Field(default=120, ge=0, description="agent credential validity after deadline")
    sse_heartbeat_s: float = Field(default=15.0, gt=0, description="comment line sent to idle SSE clients")
    sse_recheck_s: float = Field(
        default=1.0,
        gt=0,
        description="an SSE stream re-reads the session's status this long after it starts, then at every heartbeat: "
        "a change announced just before the client subscribed, whose database write was not yet visible, still arrives",
    )
    sse_queue_size: int = Field(default=32, ge=1, description="changes buffered per SSE client before it is dropped")
    max_sse_streams_per_org: int = Field(
        default=500, ge=1, description="open SSE streams one organisation may hold on one API process (429 beyond)"
    )
    max_connections: int = Field(
        default=4096, ge=16, description="open HTTP connections per API process; beyond it uvicorn answers 503"
    )
    max_requests_in_flight: int = Field(
        default=128,
        ge=1,
        le=256,
        description="requests one API process serves at once (probes, /metrics and open SSE streams not counted); "
        "beyond it, or past half of it once the event loop has run over 5 ms late for 100 ms, 503 with Retry-After at "
        "once instead of a queue that grows for seconds; half of it is always served",
    )
    keep_alive_s: int = Field(default=5, ge=1, le=300, description="an idle keep-alive connection is closed after this")
    head_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a client must send a request's line and headers within this"
    )
    max_head_bytes: int = Field(
        default=32 * 1024, ge=4096, description="larger request heads (line and headers) are refused with 431"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="a client must send a request's body within this, else 408"
    )
    dead_client_timeout_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="a connection whose sent data stays unacknowledged this long is closed (TCP_USER_TIMEOUT, Linux; "
        "0: the kernel's default of ~15 min): an SSE client that vanished without a FIN or reset frees its stream",
    )
    auth_failures_per_window: int = Field(
        default=30, ge=1, description="invalid API keys one client address may send per window before a 429"
    )
    auth_failure_window_s: int = Field(default=60, ge=1, description="the window of AUTH_FAILURES_PER_WINDOW")
    auth_miss_ttl_s: float = Field(
        default=10.0, ge=0, description="how long an unknown API key is answered 401 without a database lookup"
    )
    auth_lookups_per_s: float = Field(
        default=200.0,
        ge=0,
        description="lookups per second, per API process, of API keys it has not seen valid lately (0: unbounded): "
        "random keys from many addresses cannot flood PostgreSQL; past it such a request gets 429 + Retry-After",
    )
    cors_allow_origins: str = Field(
        default="",
        description="comma-separated browser origins allowed to call the API (none by default; dev mode adds local "
        "ones; '*' only in dev mode)",
    )
    publishable_rate_per_min: int = Field(
        default=30, ge=1, description="sessions one client address may start per minute with one publishable key"
    )
    client_token_ttl_s: int = Field(default=3600, ge=60, le=86_400, description="lifetime of a session's clientToken")
    dev_publishable_key: str = Field(default="", description="dev mode: the publishable key /demo/config.json gives")
    dev_demo_flow_id: str = Field(default="", description="dev mode: the flow /demo/config.json gives")
    demo_dir: Path | None = Field(default=None, description="dev mode: the built demo page (default <repo>/web/dist)")

    def model_post_init(self, context: object, /) -> None:
        """Refuse an empty secret, outside dev mode a public or short one, and bad CORS origins; keep idempotency
        inside the snapshot's life."""
        super().model_post_init(context)
        refuse_weak_secret("AGENT_CREDENTIAL_SECRET", self.agent_credential_secret, dev_mode=self.dev_mode)
        allowed_origins(self.cors_allow_origins, self.dev_mode)  # a bad value refuses to start, saying why
        if self.idempotency_ttl_s > self.session_snapshot_ttl_s:
            raise ValueError("IDEMPOTENCY_TTL_S must not exceed SESSION_SNAPSHOT_TTL_S")
