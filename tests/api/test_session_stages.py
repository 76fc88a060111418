"""The session's stages as GET /api/sessions/{id} shows them: the greeting's times next to the status stages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.api.session_core import session_from_row


def row(**times: Any) -> dict[str, Any]:
    """A sessions row as the session store writes it (before or after migration 3)."""
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()), "status": "ready", "reason": None, "end_code": None, "flow_id": "flow-1",
        "room_name": "room-1", "ready_deadline": now, "requested_at": now - timedelta(seconds=5),
        "dispatched_at": None, "agent_joined_at": None, "ready_at": now, "ended_at": None, **times,
    }  # fmt: skip


def test_the_greeting_times_appear_in_the_stages_in_camel_case() -> None:
    now = datetime.now(UTC)
    heard = {
        "listener_subscribed_at": now - timedelta(seconds=3),
        "greeting_started_at": now - timedelta(seconds=2),
        "greeting_finished_at": now - timedelta(seconds=1),
    }
    stages = session_from_row(row(**heard)).model_dump(by_alias=True, mode="json")["stages"]
    assert stages["listenerSubscribed"] == heard["listener_subscribed_at"].isoformat().replace("+00:00", "Z")
    assert stages["greetingStarted"] is not None and stages["greetingFinished"] is not None


def test_a_row_without_them_shows_null() -> None:
    stages = session_from_row(row()).model_dump(by_alias=True, mode="json")["stages"]
    assert (stages["listenerSubscribed"], stages["greetingStarted"], stages["greetingFinished"]) == (None, None, None)
    assert stages["ready"] is not None
