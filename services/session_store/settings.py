"""Settings of the session store, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import RuntimeSettings


class SessionStoreSettings(RuntimeSettings):
    """PostgreSQL, consumer and expiry settings."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="how long a message waits for a database connection before it is left for a retry "
        "(during an outage a longer wait only holds the message)",
    )
    max_workers: int = 16
    expiry_interval_s: float = Field(default=1.0, gt=0, description="how often readiness deadlines are checked")
    expiry_batch: int = Field(default=100, ge=1, description="sessions expired per transaction")
