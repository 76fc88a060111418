"""Settings of the API, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.api.cors import allowed_origins
from services.runtime.settings import LiveKitSettings, RuntimeSettings

DEV_AGENT_CREDENTIAL_SECRET = "dev-agent-credential-secret-change-me"


class AdminSettings(RuntimeSettings):
    """What the admin commands (migrate, create-key) need: only the database."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"


class ApiSettings(LiveKitSettings):
    """HTTP server, PostgreSQL, tokens, readiness deadlines, admission and auth caches."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_pool_timeout_s: float = Field(
        default=5.0, gt=0, description="how long a request waits for a database connection before it gives up (503)"
    )
    probe_timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="how long /readyz waits for Redis and for PostgreSQL (checked at once)"
    )
    token_ttl_s: int = Field(default=600, ge=30, le=3600, description="lifetime of a participant token")
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
        """Refuse the public dev secrets unless dev mode is on, an empty secret and bad CORS origins; keep idempotency
        inside the snapshot's life."""
        super().model_post_init(context)
        if not self.dev_mode and self.agent_credential_secret == DEV_AGENT_CREDENTIAL_SECRET:
            raise ValueError(
                "AGENT_CREDENTIAL_SECRET is the public dev default; set a real secret, or DEV_MODE=true locally"
            )
        if not self.agent_credential_secret.strip():
            raise ValueError(
                "AGENT_CREDENTIAL_SECRET is empty; set one, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        allowed_origins(self.cors_allow_origins, self.dev_mode)  # a bad value refuses to start, saying why
        if self.idempotency_ttl_s > self.session_snapshot_ttl_s:
            raise ValueError("IDEMPOTENCY_TTL_S must not exceed SESSION_SNAPSHOT_TTL_S")
