"""LiveKit data-channel topics and the agent's payloads.

- ``agent-status``: sent by the agent (its participant) to the user's frontend: ``agent.ready`` / ``agent.failed``.
- ``flow-events``: sent by the dispatcher through the server API's ``SendData`` to watchers only (monitor /
  supervisor / admin, filtered by role): :class:`contracts.flow_events.FlowEventPayload`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

AGENT_STATUS_TOPIC = "agent-status"
FLOW_EVENTS_TOPIC = "flow-events"


class AgentReadyPayload(BaseModel):
    """The existing frontend contract, field for field: do not add or rename fields."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["agent.ready"] = "agent.ready"
    sessionId: str
    greeting: str
    timestamp: str  # ISO-8601 UTC

    def to_bytes(self) -> bytes:
        """Serialise compactly, keys in contract order."""
        return self.model_dump_json().encode()


class AgentFailedPayload(BaseModel):
    """Sent instead of ``agent.ready`` when the agent cannot become ready."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["agent.failed"] = "agent.failed"
    sessionId: str
    stage: str
    reason: str
    timestamp: str

    def to_bytes(self) -> bytes:
        """Serialise compactly, keys in contract order."""
        return self.model_dump_json().encode()
