"""The job metadata the dispatcher puts on each dispatch, validated before anything else runs."""

from __future__ import annotations

import json

from pydantic import ValidationError

from contracts.job import AgentJobMetadata as SessionMetadata  # the dispatcher's contract, validated here

__all__ = ["InvalidMetadata", "SessionMetadata", "parse_metadata", "salvage_ids"]


class InvalidMetadata(ValueError):
    """The dispatch metadata is not the JSON object the agent needs; the message says what is wrong."""


def parse_metadata(raw: str) -> SessionMetadata:
    """Parse and validate the job metadata JSON; raise :class:`InvalidMetadata` with a readable reason."""
    try:
        return SessionMetadata.model_validate_json(raw or "")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'metadata'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidMetadata(f"invalid job metadata: {problems}") from exc


def salvage_ids(raw: str) -> tuple[str | None, str | None]:
    """Best effort (session_id, correlation_id) from metadata that failed validation, for the failure event."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    session_id, correlation_id = data.get("sessionId"), data.get("correlationId")
    return (
        session_id if isinstance(session_id, str) else None,
        correlation_id if isinstance(correlation_id, str) else None,
    )
