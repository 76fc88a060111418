"""Settings fields every service reads the same way (env names: docs/architecture.md, "Configuration")."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.sealed_secrets import SecretSeal, parse_keys
from services.runtime.secrets import refuse_weak_secret


class RuntimeSettings(BaseSettings):
    """Base of each service's settings: Redis, logging and dev mode."""

    # hide_input_in_errors: a refused setting is named, its value (a secret, a URL with a password) never printed
    model_config = SettingsConfigDict(env_file=None, extra="ignore", hide_input_in_errors=True)

    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    log_level: str = "INFO"
    log_json: bool | None = None
    dev_mode: bool = Field(default=False, description="Allow the livekit-server --dev default credentials.")
    consumer_name: str | None = None
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Serve Prometheus metrics on this port (0: off; the API uses /metrics)."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics port (0.0.0.0 in containers).")


class DatabaseSettings(RuntimeSettings):
    """PostgreSQL and its connection pool, for the services that use it (api, session store, webhooks)."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    db_pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="how long a unit of work waits for a database connection: a request then answers 503, a "
        "consumed message is left for a retry (during an outage a longer wait only holds it)",
    )


class BatchSettings(RuntimeSettings):
    """How many stream entries a batched consumer reads and handles together."""

    batch_max_records: int = Field(
        default=100, ge=1, description="entries of one stream read and handled together (one transaction or statement)"
    )


class SealingSettings(RuntimeSettings):
    """The keys that seal webhook signing secrets in PostgreSQL (:mod:`services.runtime.sealed_secrets`): the API
    seals the secrets it makes, the webhook sender opens them to sign."""

    webhook_secret_keys: SecretStr = Field(
        default=SecretStr(""),
        description="comma-separated Fernet keys: the first seals new webhook secrets, every one opens stored ones "
        "(rotation: new key first, then python -m services.webhooks reseal-secrets); empty: stored unsealed",
    )

    @model_validator(mode="after")
    def _keys_are_fernet_keys(self) -> Self:
        # a bad key refuses to start, saying which; after the model is built, so the error shows no key's value
        parse_keys("WEBHOOK_SECRET_KEYS", self.webhook_secret_keys.get_secret_value())
        return self

    def secret_seal(self) -> SecretSeal:
        """What seals and opens webhook secrets with these keys."""
        return SecretSeal(parse_keys("WEBHOOK_SECRET_KEYS", self.webhook_secret_keys.get_secret_value()))


DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"


class LiveKitSettings(RuntimeSettings):
    """LiveKit server URL and credentials; the ``--dev`` defaults refuse to start outside dev mode."""

    livekit_url: str = "http://127.0.0.1:7880"
    livekit_api_key: str = DEV_API_KEY
    livekit_api_secret: str = DEV_API_SECRET
    livekit_agent_name: str = "agentready"

    def model_post_init(self, context: object, /) -> None:
        """Refuse an empty secret, and outside dev mode a public or short one (FastAPI template's rule)."""
        refuse_weak_secret("LIVEKIT_API_SECRET", self.livekit_api_secret, dev_mode=self.dev_mode)

    @property
    def livekit_http_url(self) -> str:
        """The server API base URL (http/https), whatever scheme LIVEKIT_URL was given with."""
        url = self.livekit_url
        if url.startswith("ws://"):
            return "http://" + url[len("ws://") :]
        if url.startswith("wss://"):
            return "https://" + url[len("wss://") :]
        return url

    @property
    def livekit_ws_url(self) -> str:
        """The URL frontends and agents connect to (ws/wss)."""
        url = self.livekit_http_url
        if url.startswith("https://"):
            return "wss://" + url[len("https://") :]
        return "ws://" + url[len("http://") :] if url.startswith("http://") else url
