"""Settings of the session store, from the environment."""

from __future__ import annotations

from services.runtime.settings import RuntimeSettings


class SessionStoreSettings(RuntimeSettings):
    """PostgreSQL and consumer settings."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = 1
    db_pool_max: int = 10
    max_workers: int = 16
