"""Settings of the webhook sender, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import BatchSettings, DatabaseSettings, SealingSettings


class WebhookSettings(DatabaseSettings, BatchSettings, SealingSettings):
    """PostgreSQL, consumer, sending and retry settings (``WEBHOOK_*``, besides the shared ones)."""

    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=60, description="bound on one HTTP attempt (connect, send, answer)"
    )
    webhook_max_in_flight: int = Field(default=128, ge=1, description="HTTP attempts at once, per replica")
    webhook_max_in_flight_per_endpoint: int = Field(
        default=16, ge=1, description="HTTP attempts at once to one endpoint: a slow one cannot take every slot"
    )
    webhook_max_attempts: int = Field(default=5, ge=1, le=20, description="attempts before a delivery is dead")
    webhook_retry_base_s: float = Field(default=5.0, gt=0, description="wait after the first failed attempt")
    webhook_retry_factor: float = Field(default=4.0, ge=1, description="each later wait is this much longer")
    webhook_retry_max_s: float = Field(default=900.0, gt=0, description="no wait is longer")
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="each wait varies by up to this fraction, so retries do not bunch"
    )
    webhook_poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="how often due deliveries are looked for besides the wake-ups (a new delivery, a retry this "
        "replica scheduled): finds replays and the retries of replicas that stopped",
    )
    webhook_lease_margin_s: float = Field(
        default=30.0, gt=0, description="a claimed delivery whose sender died is due again this long after its timeout"
    )
    webhook_allow_private: bool | None = Field(
        default=None,
        description="send to loopback and private addresses (default: only in DEV_MODE); off, such a delivery fails",
    )

    @property
    def allow_private(self) -> bool:
        """Whether private and loopback addresses may be sent to: ``WEBHOOK_ALLOW_PRIVATE``, else dev mode."""
        return self.dev_mode if self.webhook_allow_private is None else self.webhook_allow_private
