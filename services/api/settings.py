"""Settings of the API, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import LiveKitSettings


class ApiSettings(LiveKitSettings):
    """HTTP server, PostgreSQL, tokens and readiness deadlines."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    token_ttl_s: int = Field(default=600, ge=30, description="lifetime of a participant token")
    ready_timeout_s: float = Field(default=30.0, gt=0, description="default readiness deadline of a session")
    session_snapshot_ttl_s: int = Field(default=3600, ge=60)
    default_org_id: str = "default"
