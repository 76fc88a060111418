"""A batch of status changes and user sightings planned against the rows they touch: plain rules, no SQL.

The repository reads (and locks) every session a batch touches, this module applies the batch's changes to those
rows in stream order, exactly as one change after the other would (first value of a fact or stage time wins; the
status moves only forward), and the sightings as :data:`~services.session_store.statements.PRESENCE` would one after
the other (the latest sighting wins), and says what to write back (one row per session: one statement for the whole
batch), which moves to announce and which stage times each change recorded (for the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from contracts.events import SessionStageTimes
from contracts.status import SessionStatus, can_transition
from services.session_store.lifecycle import STAGE_TIMES, STARTUP_STAGES, StageTimes, StatusChange, Transition

FACT_COLUMNS = (
    "org_id", "flow_id", "room_name", "ready_deadline", "correlation_id", "end_deadline",
    "listener_subscribed_at", "greeting_started_at", "greeting_finished_at",
)  # fmt: skip
STAGE_COLUMNS = ("requested_at", "dispatched_at", "agent_joined_at", "ready_at", "ended_at")
PRESENCE_COLUMNS = ("user_joined_at", "user_sid", "user_left_at", "user_left_sid")  # written back whole
STORED_COLUMNS = ("status", *dict.fromkeys((*FACT_COLUMNS, *STAGE_TIMES)), *PRESENCE_COLUMNS)  # the lock reads these


class Sighting(Protocol):
    """The user seen joining (``present``) or leaving the session's room at ``at``, as connection
    ``participant_sid`` (empty: not known, the agent's report)."""

    @property
    def session_id(self) -> str: ...
    @property
    def present(self) -> bool: ...
    @property
    def at(self) -> datetime: ...
    @property
    def participant_sid(self) -> str: ...


@dataclass
class RowPlan:
    """What one session's row becomes: each value set only where the column is still empty (first one wins)."""

    session_id: str
    status: SessionStatus | None
    values: dict[str, Any] = field(default_factory=dict)  # fact and stage columns, first value in stream order
    reason: str | None = None  # of the last move that gave one
    end_code: str | None = None
    presence: dict[str, Any] = field(default_factory=dict)  # PRESENCE_COLUMNS after the batch's sightings


@dataclass
class BatchPlan:
    """The rows to write, the move (or None) of each change in order, and the stage times each change recorded."""

    rows: list[RowPlan]
    transitions: list[Transition | None]
    stages: list[StageTimes]


def plan(
    changes: Sequence[StatusChange],
    stored: Mapping[str, Mapping[str, Any]],
    created: set[str],
    sightings: Sequence[Sighting] = (),
) -> BatchPlan:
    """Apply ``changes`` and ``sightings`` (each in stream order) to the ``stored`` rows (by session id, as locked;
    ``created`` ones were just inserted for this batch and have no status yet). A row only sighted keeps its status
    (its plan's is None when it was created)."""
    rows: dict[str, RowPlan] = {}
    state: dict[str, dict[str, Any]] = {}

    def row_of(sid: str) -> tuple[dict[str, Any], RowPlan]:
        if sid not in rows:
            row = stored[sid]
            state[sid] = {name: row.get(name) for name in STORED_COLUMNS}
            status = state[sid]["status"]
            state[sid]["status"] = None if sid in created or status is None else SessionStatus(status)
            rows[sid] = RowPlan(sid, state[sid]["status"])
        return state[sid], rows[sid]

    transitions: list[Transition | None] = []
    stages: list[StageTimes] = []
    for change in changes:
        sid = change.session_id
        now, plan_ = row_of(sid)
        before_startup = {name: now[name] for name in STARTUP_STAGES}
        org_before, flow_before, correlation_before = now["org_id"], now["flow_id"], now["correlation_id"]
        current: SessionStatus | None = now["status"]
        moves = can_transition(current, change.target)
        new: dict[str, object] = dict(change.facts)
        if change.stage is not None:
            new[change.stage] = change.at
        for column, value in new.items():
            if value is not None and now[column] is None:
                now[column] = value
                plan_.values.setdefault(column, value)
        org_id = change.facts.get("org_id", org_before)
        if moves:
            now["status"] = plan_.status = change.target
            if change.reason is not None:
                plan_.reason = change.reason
            if change.code is not None:
                plan_.end_code = change.code.value
            transitions.append(
                Transition(
                    session_id=sid,
                    org_id=str(org_id) if org_id is not None else None,
                    from_status=current,
                    to_status=change.target,
                    reason=change.reason,
                    correlation_id=correlation_before,
                    code=change.code,
                    stages=SessionStageTimes(**{name: now[name] for name in STAGE_TIMES}),
                )
            )
        else:
            transitions.append(None)
        flow_id = change.facts.get("flow_id", flow_before)
        stages.append(StageTimes.recorded_by(change, _times(before_startup), org_id, flow_id))
    for sighting in sightings:  # their columns are theirs alone: applied after the changes, as the upserts were
        now, plan_ = row_of(sighting.session_id)
        _sighted(now, sighting)
        plan_.presence = {name: now[name] for name in PRESENCE_COLUMNS}
    return BatchPlan(list(rows.values()), transitions, stages)


def _sighted(now: dict[str, Any], sighting: Sighting) -> None:
    """The latest sighting wins (webhooks and agent reports arrive out of order); a connection id comes only from
    LiveKit's webhooks, so the agent's report (no id) never replaces one. The rule of ``statements.PRESENCE``."""
    at_column, sid_column = ("user_joined_at", "user_sid") if sighting.present else ("user_left_at", "user_left_sid")
    seen, sid = now[at_column], sighting.participant_sid or None
    if sid is not None and (seen is None or sighting.at >= seen):
        now[sid_column] = sid
    now[at_column] = sighting.at if seen is None else max(seen, sighting.at)


def _times(values: Mapping[str, Any]) -> dict[str, datetime | None]:
    return {name: value for name, value in values.items() if value is None or isinstance(value, datetime)}
