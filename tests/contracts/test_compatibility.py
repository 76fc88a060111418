"""Events stay readable across a rolling deploy: a consumer built before a field was added still parses them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

from contracts.datachannel import AGENT_STATUS_TOPIC, FLOW_EVENTS_TOPIC, trusted_sender
from contracts.events import LifecycleEvent, SessionRequested


def test_an_event_with_a_field_this_version_does_not_know_is_accepted() -> None:
    sent = SessionRequested(
        session_id=uuid.uuid4().hex,
        org_id="org",
        flow_id="flow",
        room_name="room",
        greeting="Hi",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )
    wire = {**sent.model_dump(mode="json"), "field_from_a_newer_producer": {"nested": 1}}
    received = TypeAdapter(LifecycleEvent).validate_python(wire)
    assert received == sent


def test_only_the_agent_and_the_server_are_trusted_on_their_topics() -> None:
    agent = {"from_agent": True, "from_server": False}
    server = {"from_agent": False, "from_server": True}
    user = {"from_agent": False, "from_server": False}  # any other participant, or one not yet announced
    assert trusted_sender(AGENT_STATUS_TOPIC, "agent.ready", **agent)
    assert not trusted_sender(AGENT_STATUS_TOPIC, "agent.ready", **server)  # the server never says ready
    assert not trusted_sender(AGENT_STATUS_TOPIC, "agent.ready", **user)
    assert trusted_sender(AGENT_STATUS_TOPIC, "agent.failed", **agent)
    assert trusted_sender(AGENT_STATUS_TOPIC, "agent.failed", **server)  # the dispatcher, when no agent is there
    assert not trusted_sender(AGENT_STATUS_TOPIC, "agent.failed", **user)
    assert trusted_sender(FLOW_EVENTS_TOPIC, "flow.event", **server)
    assert not trusted_sender(FLOW_EVENTS_TOPIC, "flow.event", **agent)
    assert not trusted_sender(FLOW_EVENTS_TOPIC, "flow.event", **user)
    assert not trusted_sender("lk.chat", "anything", **server)
