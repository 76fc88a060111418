"""Metadata the dispatcher puts on the agent dispatch and the agent reads from ``ctx.job.metadata``."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import SessionId, new_message_id
from contracts.providers import ProviderChoice


class AgentJobMetadata(BaseModel):
    """What the agent needs to start a session; JSON with camelCase keys on the wire (the agent validates it)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    session_id: SessionId = Field(alias="sessionId")
    flow_id: str = Field(alias="flowId", min_length=1)
    org_id: str = Field(alias="orgId", min_length=1)
    room_name: str = Field(alias="roomName", min_length=1)
    greeting: str
    correlation_id: str = Field(alias="correlationId", default_factory=new_message_id, min_length=1)
    credential: str = ""  # the session's agent credential for the API's flow-init endpoint
    providers: ProviderChoice = Field(default_factory=ProviderChoice)  # built at stage "providers", before the user
    traceparent: str = ""  # W3C trace context of the session's trace: the agent's spans join it

    def to_json(self) -> str:
        """Serialise for the dispatch's metadata field (camelCase keys)."""
        return self.model_dump_json(by_alias=True)


def room_metadata(job_metadata: str) -> str:
    """The job metadata without its secrets, for the room's metadata, which every participant can read."""
    try:
        data = json.loads(job_metadata)
    except ValueError:
        return job_metadata
    if isinstance(data, dict):
        data.pop("credential", None)
        data.pop("traceparent", None)  # only the agent needs it
    return json.dumps(data, separators=(",", ":"))
