"""Events stay readable across a rolling deploy: a consumer built before a field was added still parses them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter

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
