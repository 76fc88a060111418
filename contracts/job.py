"""Metadata the dispatcher puts on the agent dispatch and the agent reads from ``ctx.job.metadata``."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict


class AgentJobMetadata(BaseModel):
    """What the agent needs to start a session; JSON with camelCase keys on the wire."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sessionId: str
    flowId: str
    orgId: str
    roomName: str
    greeting: str
    correlationId: str
    credential: str = ""  # the session's agent credential for the API's flow-init endpoint

    def to_json(self) -> str:
        """Serialise for the dispatch's metadata field."""
        return self.model_dump_json()


def room_metadata(job_metadata: str) -> str:
    """The job metadata without its secrets, for the room's metadata, which every participant can read."""
    try:
        data = json.loads(job_metadata)
    except ValueError:
        return job_metadata
    if isinstance(data, dict):
        data.pop("credential", None)
    return json.dumps(data, separators=(",", ":"))
