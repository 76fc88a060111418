"""The session store's Prometheus metrics: start-up stage latencies and status moves, observed once per commit.

The session store applies every lifecycle event, so it sees every stage of every session, whichever service's
event reports it. An interval (e.g. requested -> dispatched) is observed by the change that first makes both its
ends and the request (organisation, flow) known: exactly once per session, whatever order the events arrive in,
never for a redelivered duplicate (it records nothing new), never for a change that rolled back (observed after
the commit). Stage times come from the services that saw them (API, dispatcher, agent): a clock skew between hosts
shows here; a negative interval counts as 0.

Labels: ``org`` (bounded: the first ``METRICS_ORG_LABELS`` organisations, later ones ``_other``) and ``flow``
(bounded the same way by ``METRICS_FLOW_LABELS``, default 0: every flow is ``_other``; flows are customer
configuration and can be unbounded; turn it on for a handful of flows, the database has each session's stages).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from contracts.status import TERMINAL as TERMINAL_STATUSES
from services.runtime.metric_labels import BoundedLabel
from services.session_store.lifecycle import StageTimes, Transition

# (stage label, from column, to column): each start-up step, named after where it ends
STAGE_INTERVALS: Final = (
    ("dispatched", "requested_at", "dispatched_at"),
    ("agent_joined", "dispatched_at", "agent_joined_at"),
    ("listener_subscribed", "agent_joined_at", "listener_subscribed_at"),
    ("ready", "listener_subscribed_at", "ready_at"),
)
TO_READY: Final = ("requested_at", "ready_at")  # POST -> ready: requested_at is when the API accepted the POST

BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)

STAGE_SECONDS = Histogram(
    "agentready_session_stage_seconds",
    "Time of one start-up step of a session, labelled by the stage it ends at "
    "(dispatched: requested->dispatched, agent_joined, listener_subscribed, ready).",
    ["stage", "org", "flow"],
    buckets=BUCKETS,
)
TIME_TO_READY = Histogram(
    "agentready_session_time_to_ready_seconds",
    "From the API accepting POST .../sessions to agent.ready.",
    ["org", "flow"],
    buckets=BUCKETS,
)
TRANSITIONS = Counter("agentready_session_transitions_total", "Committed status moves, by new status.", ["status"])
TERMINAL = Counter(
    "agentready_sessions_terminal_total",
    "Sessions that reached a terminal status, by status and end code (contracts/endings.py).",
    ["status", "code"],
)


class SessionMetrics:
    """The :class:`~services.session_store.lifecycle.LifecycleObserver` that feeds the metrics above."""

    def __init__(self, max_orgs: int = 100, max_flows: int = 0) -> None:
        self._org = BoundedLabel(max_orgs)
        self._flow = BoundedLabel(max_flows)

    def stages_recorded(self, times: StageTimes) -> None:
        """Observe every interval this change completed."""
        if times.after.keys() == times.before.keys():
            return  # nothing new: a duplicate, a late event, a presence report
        org, flow = self._org(times.org_id), self._flow(times.flow_id)
        for stage, start, end in STAGE_INTERVALS:
            seconds = _completed(times, start, end)
            if seconds is not None:
                STAGE_SECONDS.labels(stage, org, flow).observe(seconds)
        seconds = _completed(times, *TO_READY)
        if seconds is not None:
            TIME_TO_READY.labels(org, flow).observe(seconds)

    def status_moved(self, transition: Transition) -> None:
        """Count the move, and the end when it is terminal."""
        TRANSITIONS.labels(transition.to_status.value).inc()
        if transition.to_status in TERMINAL_STATUSES:
            code = transition.code.value if transition.code is not None else ""
            TERMINAL.labels(transition.to_status.value, code).inc()

    def status_moves(self, transitions: list[Transition]) -> None:
        """Count a batch of moves (the expiry and end scans)."""
        for transition in transitions:
            self.status_moved(transition)


def _completed(times: StageTimes, start: str, end: str) -> float | None:
    """Seconds from ``start`` to ``end`` if this change made both known, with the request (which names the
    organisation and flow: an interval seen before the request waits for it), else None."""
    needed = (start, end, "requested_at")
    if not all(name in times.after for name in needed) or all(name in times.before for name in needed):
        return None
    return max(0.0, (times.after[end] - times.after[start]).total_seconds())
