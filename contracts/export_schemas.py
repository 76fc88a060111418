"""Write the JSON Schema of every event and data-channel payload to ``contracts/schemas/``.

Run ``python -m contracts.export_schemas`` after changing a model; a test fails while they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contracts.datachannel import AgentFailedPayload, AgentReadyPayload
from contracts.events import ALL_EVENTS, event_type
from contracts.flow_events import FlowEvent, FlowEventPayload
from contracts.webhooks import WebhookMessage

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render_schemas() -> dict[str, str]:
    """Return file name -> JSON text for every contract model."""
    models: dict[str, type[BaseModel]] = {f"{event_type(m)}.json": m for m in ALL_EVENTS}
    models["datachannel.agent.ready.json"] = AgentReadyPayload
    models["datachannel.agent.failed.json"] = AgentFailedPayload
    models["flow.event.json"] = FlowEvent
    models["datachannel.flow.event.json"] = FlowEventPayload
    models["webhook.message.json"] = WebhookMessage  # the body customers' webhook endpoints receive
    return {name: json.dumps(m.model_json_schema(), indent=2, sort_keys=True) + "\n" for name, m in models.items()}


def main() -> None:
    """Regenerate the checked-in schema files."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render_schemas().items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(render_schemas())} schemas to {SCHEMA_DIR}")


if __name__ == "__main__":
    main()
