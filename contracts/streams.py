"""Redis Stream and consumer-group names: one stream per event type."""

from __future__ import annotations

from contracts.events import (
    AgentFailed,
    AgentJobEnded,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionDispatchFailed,
    SessionEndRequested,
    SessionRequested,
    SessionStatusChanged,
    UserPresenceChanged,
    event_type,
)
from contracts.flow_events import FlowEvent

STREAM_PREFIX = "agentready"


def stream_for(model: type[Event]) -> str:
    """Return the stream that carries events of ``model``."""
    return f"{STREAM_PREFIX}:{event_type(model)}"


SESSION_REQUESTED = stream_for(SessionRequested)
SESSION_DISPATCHED = stream_for(SessionDispatched)
SESSION_DISPATCH_FAILED = stream_for(SessionDispatchFailed)
AGENT_JOINED = stream_for(AgentJoined)
AGENT_READY = stream_for(AgentReady)
AGENT_FAILED = stream_for(AgentFailed)
SESSION_END_REQUESTED = stream_for(SessionEndRequested)
SESSION_STATUS_CHANGED = stream_for(SessionStatusChanged)
AGENT_JOB_ENDED = stream_for(AgentJobEnded)
USER_PRESENCE_CHANGED = stream_for(UserPresenceChanged)
FLOW_EVENT = stream_for(FlowEvent)  # agent stage/flow/error events and lifecycle events, relayed to watchers


class Groups:
    """Consumer-group names, one per consuming service."""

    DISPATCHER = "dispatcher"
    SESSION_STORE = "session_store"
    API = "api"
    WEBHOOKS = "webhooks"  # customers' lifecycle webhooks (services/webhooks)


# Which group reads which stream: every service creates all of these at start-up (from id 0),
# so a message published before a consumer first started is never missed.
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    # no agent.joined for the dispatcher: the status change to agent_joined disarms its watchdog
    Groups.DISPATCHER: (SESSION_REQUESTED, SESSION_STATUS_CHANGED, FLOW_EVENT),
    Groups.SESSION_STORE: (
        SESSION_REQUESTED,
        SESSION_DISPATCHED,
        SESSION_DISPATCH_FAILED,
        AGENT_JOINED,
        AGENT_READY,
        AGENT_FAILED,
        SESSION_END_REQUESTED,
        AGENT_JOB_ENDED,
        USER_PRESENCE_CHANGED,
    ),
    Groups.WEBHOOKS: (SESSION_STATUS_CHANGED,),
}
# No group reads SESSION_STATUS_CHANGED for the API: every API replica must see every change (plain XREAD).


def dead_letter_stream(stream: str) -> str:
    """Return the dead-letter stream that receives poison messages of ``stream``."""
    return f"{stream}:dead"
