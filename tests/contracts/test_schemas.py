"""Checked-in JSON Schemas match the models; the data-channel payload has exactly the frontend's fields."""

from __future__ import annotations

import json

from contracts.datachannel import AgentReadyPayload
from contracts.events import ALL_EVENTS, event_type
from contracts.export_schemas import SCHEMA_DIR, render_schemas


def test_checked_in_schemas_are_current() -> None:
    rendered = render_schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    stale = sorted(name for name in rendered if on_disk.get(name) != rendered[name])
    extra = sorted(set(on_disk) - set(rendered))
    assert not stale and not extra, (
        f"stale schemas {stale}, unexpected {extra}: run `uv run python -m contracts.export_schemas`"
    )


def test_every_event_has_the_envelope() -> None:
    for model in ALL_EVENTS:
        fields = set(model.model_fields)
        assert {"message_id", "occurred_at", "schema_version", "correlation_id", "session_id", "type"} <= fields
        assert event_type(model).count(".") == 1


def test_agent_ready_payload_is_the_frontend_contract() -> None:
    payload = AgentReadyPayload(sessionId="s1", greeting="Hi", timestamp="2026-01-01T00:00:00.000Z")
    assert payload.to_bytes() == (
        b'{"type":"agent.ready","sessionId":"s1","greeting":"Hi","timestamp":"2026-01-01T00:00:00.000Z"}'
    )
    assert list(json.loads(payload.to_bytes())) == ["type", "sessionId", "greeting", "timestamp"]
