"""Settings fields every service reads the same way (env names: docs/architecture.md, "Configuration")."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.secrets import refuse_weak_secret


class RuntimeSettings(BaseSettings):
    """Base of each service's settings: Redis, logging and dev mode."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    log_level: str = "INFO"
    log_json: bool | None = None
    dev_mode: bool = Field(default=False, description="Allow the livekit-server --dev default credentials.")
    consumer_name: str | None = None


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
