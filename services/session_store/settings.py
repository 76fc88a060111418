"""Settings of the session store, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import BatchSettings, DatabaseSettings


class SessionStoreSettings(DatabaseSettings, BatchSettings):
    """PostgreSQL, consumer and expiry settings."""

    batch_linger_ms: int = Field(
        default=50,
        ge=0,
        le=1000,
        description="a read that found fewer than batch_max_records events waits this long for more before they are "
        "applied: fewer, larger transactions (at the pipeline's pace, CPU per session: 0 ms 9.5, 20 ms ~4, 50 ms ~3, "
        "100 ms ~2 ms) for a status recorded and announced up to this much later (0: at once)",
    )
    batch_rest_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="instead of lingering, the read after one that found fewer than batch_max_records events waits "
        "this long first (a lone event is applied at once; one read per batch, its acks go later). Measured at the "
        "pipeline's pace against the same linger: ~2% less session store CPU but ~10% more PostgreSQL CPU (smaller "
        "batches), so off (0) by default",
    )
    expiry_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="how often readiness deadlines are checked at least; the deadline of a session this replica "
        "recorded the request of wakes the check when due (at most once a second)",
    )
    expiry_batch: int = Field(default=100, ge=1, description="sessions expired per transaction")
    end_scan_interval_s: float = Field(
        default=5.0, gt=0, description="how often the end rules (maximum duration, user left, nobody joined) run"
    )
    session_max_duration_s: float = Field(
        default=7200.0, gt=0, description="a session ends this long after it was requested, unless its flow says"
    )
    user_left_grace_s: float = Field(
        default=30.0, ge=0, description="a user who left (LiveKit webhook) may come back this long before it ends"
    )
    no_user_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="a ready session nobody was ever seen joining ends after this long (keep it above the agent's "
        "AGENT_USER_WAIT_SECONDS: the agent ends such a job itself first)",
    )
    announce_sweep_interval_s: float = Field(
        default=5.0, gt=0, description="how often the outbox of status changes stored but not announced is swept"
    )
    announce_sweep_after_s: float = Field(
        default=30.0,
        gt=0,
        description="a stored status change not announced this long after it committed (its replica died, or Redis "
        "refused, in between) is announced by the sweep of any replica",
    )
    metrics_org_labels: int = Field(
        default=100, ge=0, description="organisations with a label of their own in the stage histograms (then _other)"
    )
    metrics_flow_labels: int = Field(
        default=0, ge=0, description="flows with a label of their own in the stage histograms (0: all are _other)"
    )
