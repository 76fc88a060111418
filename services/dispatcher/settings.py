"""Settings of the dispatcher, from the environment."""

from __future__ import annotations

from pydantic import Field

from services.runtime.settings import LiveKitSettings


class DispatcherSettings(LiveKitSettings):
    """LiveKit room options, retry bounds and concurrency toward LiveKit."""

    room_empty_timeout_s: int = Field(default=300, ge=1)
    room_departure_timeout_s: int = Field(default=20, ge=0)
    room_max_participants: int = Field(default=10, ge=0)
    livekit_max_in_flight: int = Field(default=64, ge=1, description="cap on LiveKit API requests in flight")
    livekit_timeout_s: float = Field(default=5.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1)
    retry_max_seconds: float = Field(default=20.0, gt=0)
    retry_initial_s: float = Field(default=0.1, gt=0)
    max_workers: int = Field(default=64, ge=1, description="messages handled concurrently per replica")
