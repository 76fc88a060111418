"""The room seam: how a job joins its room, waits for the user and sends data, whatever the backend (the
agent's audio is the voice seam's: services/agent/voice.py).

``LiveKitRoom`` (production, WebRTC through the JobContext) and ``SimulatorRoom`` (the devstack
simulator's room bus) implement :class:`AgentRoom`; :func:`create_room` picks one from settings.
Nothing else in the agent knows which one it talks to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from livekit.agents import JobContext

    from services.agent.settings import AgentSettings


class RoomClosed(ConnectionError):
    """The room connection ended while the job still needed it."""


class AgentRoom(Protocol):
    """What the readiness pipeline needs from a room."""

    async def connect(self) -> None:
        """Join the room as the agent participant."""

    async def wait_for_participant(self, timeout: float) -> str:  # noqa: ASYNC109 - the deadline is part of the port
        """Return the identity of the first non-agent participant; raise TimeoutError after ``timeout`` s."""

    async def publish_data(self, payload: bytes, *, topic: str, reliable: bool = True) -> None:
        """Send ``payload`` to every other participant on ``topic``."""

    async def wait_until_over(self, identity: str | None) -> None:
        """Return when ``identity`` left the room (None: only on close) or the connection closed."""

    async def disconnect(self) -> None:
        """Leave the room; safe to call more than once or when never connected."""


def create_room(settings: AgentSettings, ctx: JobContext) -> AgentRoom:
    """Build the room adapter the settings ask for, bound to this job."""
    if settings.agent_room_backend == "simulator":
        from services.agent.room_simulator import SimulatorRoom

        # livekit-agents keeps the assignment's URL and participant token only on the private
        # RunningJobInfo (its own warm-transfer workflow reads it the same way).
        info = ctx._info
        return SimulatorRoom(url=info.url or settings.livekit_ws_url, token=info.token)
    from services.agent.room_livekit import LiveKitRoom

    return LiveKitRoom(ctx)
