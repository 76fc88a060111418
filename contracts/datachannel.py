"""LiveKit data-channel topics and the agent's payloads.

- ``agent-status``: sent by the agent (its participant) to the user's frontend: ``agent.ready`` / ``agent.failed``;
  when no agent is there to say it (the dispatch failed, re-dispatch gave up, the readiness deadline passed) the
  dispatcher sends ``agent.failed`` through the server API's ``SendData``, with a stable ``code`` and a short
  sentence for the end user as ``reason`` (never an exception text: the detail goes to admins on ``flow-events``).
- ``flow-events``: sent by the dispatcher through the server API's ``SendData`` to watchers only (monitor /
  supervisor / admin, filtered by role): :class:`contracts.flow_events.FlowEventPayload`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.endings import EndCode

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
    """Sent instead of ``agent.ready`` when the agent cannot become ready (``code`` only when the sender has one)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["agent.failed"] = "agent.failed"
    sessionId: str
    stage: str
    reason: str
    timestamp: str
    code: str | None = None

    def to_bytes(self) -> bytes:
        """Serialise compactly, keys in contract order; no ``code`` key when there is none."""
        return self.model_dump_json(exclude_none=True).encode()


# Stable codes of ``agent.failed`` that a frontend can match, each with the sentence an end user is shown: the
# session's end codes (contracts.endings), and one finer dispatch failure.
FAILURE_DISPATCH = EndCode.DISPATCH_FAILED.value  # LiveKit refused the room or the dispatch
FAILURE_NO_AGENT = "no_agent_available"  # a dispatch failure: no agent joined after the re-dispatches
FAILURE_DEADLINE = EndCode.NOT_READY_IN_TIME.value
FAILURE_AGENT = EndCode.AGENT_FAILED.value
FAILURE_SENTENCES: dict[str, str] = {
    FAILURE_DISPATCH: "The assistant could not be started. Please try again.",
    FAILURE_NO_AGENT: "No assistant is available right now. Please try again in a moment.",
    FAILURE_DEADLINE: "The assistant did not get ready in time. Please try again.",
    FAILURE_AGENT: "The assistant stopped before it was ready. Please try again.",
}
