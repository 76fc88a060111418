"""The flow-events format: who sees which kind and which parts, and the exact wire shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from contracts.flow_events import FlowEvent, is_watcher, project, watcher_role

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def event(kind: str) -> FlowEvent:
    return FlowEvent(
        session_id="s1",
        room_name="r1",
        kind=kind,  # type: ignore[arg-type]
        name=f"{kind}.happened",
        occurred_at=AT,
        data={"stage": "greeting"},
        details={"greeting": "Hi"},
        error={"reason": "boom"},
    )


def test_each_role_sees_its_kinds_and_parts() -> None:
    seen = {
        role: {kind: project(event(kind), role, 7) for kind in ("lifecycle", "stage", "flow", "error")}
        for role in ("monitor", "supervisor", "admin")
    }
    assert {k for k, p in seen["monitor"].items() if p} == {"lifecycle", "stage"}
    assert {k for k, p in seen["supervisor"].items() if p} == {"lifecycle", "stage", "flow"}
    assert {k for k, p in seen["admin"].items() if p} == {"lifecycle", "stage", "flow", "error"}
    monitor, supervisor, admin = (json.loads(seen[r]["stage"].to_bytes()) for r in ("monitor", "supervisor", "admin"))  # type: ignore[union-attr]
    assert monitor == {
        "version": 1,
        "type": "flow.event",
        "sessionId": "s1",
        "seq": 7,
        "kind": "stage",
        "name": "stage.happened",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "data": {"stage": "greeting"},
    }
    assert supervisor == {**monitor, "details": {"greeting": "Hi"}}
    assert admin == {**supervisor, "error": {"reason": "boom"}}
    assert project(event("stage"), "user", 1) is None


def test_watchers_are_told_apart_by_their_role_attribute() -> None:
    assert watcher_role({"agentready.role": "admin"}) == "admin"
    assert watcher_role({"agentready.role": "root"}) is None
    assert is_watcher({"agentready.role": "root"})  # never mistaken for the user either
    assert not is_watcher({"lk.agent.state": "listening"})
