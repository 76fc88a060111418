"""A batch of status changes planned against the rows they touch: plain rules, no SQL.

The repository reads (and locks) every session a batch touches, this module applies the batch's changes to those
rows in stream order, exactly as one change after the other would (first value of a fact or stage time wins; the
status moves only forward), and says what to write back (one row per session), which moves to announce and which
stage times each change recorded (for the metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.events import SessionStageTimes
from contracts.status import SessionStatus, can_transition
from services.session_store.lifecycle import STAGE_TIMES, STARTUP_STAGES, StageTimes, StatusChange, Transition

FACT_COLUMNS = (
    "org_id", "flow_id", "room_name", "ready_deadline", "correlation_id", "end_deadline",
    "listener_subscribed_at", "greeting_started_at", "greeting_finished_at",
)  # fmt: skip
STAGE_COLUMNS = ("requested_at", "dispatched_at", "agent_joined_at", "ready_at", "ended_at")
STORED_COLUMNS = ("status", *dict.fromkeys((*FACT_COLUMNS, *STAGE_TIMES)))  # what the lock reads of each row


@dataclass
class RowPlan:
    """What one session's row becomes: each value set only where the column is still empty (first one wins)."""

    session_id: str
    status: SessionStatus | None
    values: dict[str, Any] = field(default_factory=dict)  # fact and stage columns, first value in stream order
    reason: str | None = None  # of the last move that gave one
    end_code: str | None = None


@dataclass
class BatchPlan:
    """The rows to write, the move (or None) of each change in order, and the stage times each change recorded."""

    rows: list[RowPlan]
    transitions: list[Transition | None]
    stages: list[StageTimes]


def plan(changes: Sequence[StatusChange], stored: Mapping[str, Mapping[str, Any]], created: set[str]) -> BatchPlan:
    """Apply ``changes`` (stream order) to the ``stored`` rows (by session id, as locked; ``created`` ones were just
    inserted for this batch and have no status yet)."""
    rows: dict[str, RowPlan] = {}
    state: dict[str, dict[str, Any]] = {}
    transitions: list[Transition | None] = []
    stages: list[StageTimes] = []
    for change in changes:
        sid = change.session_id
        if sid not in rows:
            row = stored[sid]
            state[sid] = {name: row.get(name) for name in STORED_COLUMNS}
            status = state[sid]["status"]
            state[sid]["status"] = None if sid in created or status is None else SessionStatus(status)
            rows[sid] = RowPlan(sid, state[sid]["status"])
        now, plan_ = state[sid], rows[sid]
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
    return BatchPlan(list(rows.values()), transitions, stages)


def _times(values: Mapping[str, Any]) -> dict[str, datetime | None]:
    return {name: value for name, value in values.items() if value is None or isinstance(value, datetime)}
