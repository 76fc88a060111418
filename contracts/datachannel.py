"""LiveKit data-channel topics and the agent's payloads.

- ``agent-status``: sent by the agent (its participant) to the user's frontend: ``agent.ready`` / ``agent.failed``;
  when no agent is there to say it (the dispatch failed, re-dispatch gave up, the readiness deadline passed) the
  dispatcher sends ``agent.failed`` through the server API's ``SendData``, with a stable ``code`` and a short
  sentence for the end user as ``reason`` (never an exception text: the detail goes to admins on ``flow-events``).
- ``flow-events``: sent by the dispatcher through the server API's ``SendData`` to watchers only (monitor /
  supervisor / admin, filtered by role): :class:`contracts.flow_events.FlowEventPayload`.

Anyone whose token allows publishing data can send on any topic, so a receiver checks the sender
(:func:`trusted_sender`). LiveKit stamps every packet with its sender's identity (a client cannot forge it); a packet
sent with the server API's ``SendData`` has none (nor has one from a hidden participant: watcher tokens may not
publish data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.endings import EndCode

AGENT_STATUS_TOPIC = "agent-status"
FLOW_EVENTS_TOPIC = "flow-events"


def trusted_sender(topic: str | None, message_type: object, *, from_agent: bool, from_server: bool) -> bool:
    """Whether a receiver may act on a ``message_type`` message on ``topic`` from this sender: ``agent-status`` from
    the agent participant (kind AGENT), ``agent.failed`` also from the server; ``flow-events`` from the server only.

    ``from_server``: the packet names no sender (SendData); a sender the receiver does not know yet is neither."""
    if topic == AGENT_STATUS_TOPIC:
        return from_agent or (from_server and message_type == "agent.failed")
    if topic == FLOW_EVENTS_TOPIC:
        return from_server
    return False


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
