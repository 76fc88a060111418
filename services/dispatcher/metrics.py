"""The dispatcher's Prometheus metrics: dispatch outcomes, re-dispatches and LiveKit call errors.

Counted at the edge (the handlers and the LiveKit adapter), from the outcome each plain function returns, so the
dispatching rules stay free of instrumentation. A redelivered ``session.requested`` whose dispatch already exists
counts again (its outcome is published again too): read these as rates.
"""

from __future__ import annotations

from prometheus_client import Counter

from contracts.events import Event, SessionDispatched, SessionDispatchFailed

DISPATCHES = Counter(
    "agentready_dispatches_total",
    "Sessions given a room and one agent dispatch; attempt: first, or redispatch (the watchdog, no agent joined).",
    ["attempt"],
)
DISPATCH_FAILURES = Counter(
    "agentready_dispatch_failures_total",
    "Sessions the dispatcher gave up on, by code (dispatch_failed: LiveKit refused or stayed unavailable; "
    "no_agent_available: no agent joined after the re-dispatches).",
    ["code"],
)
LIVEKIT_ERRORS = Counter(
    "agentready_livekit_call_errors_total",
    "Failed LiveKit server API calls; kind: transient, not_found, permanent or unreachable; code: Twirp's code.",
    ["kind", "code"],
)


def count_outcome(outcome: Event | None) -> None:
    """Count what a dispatch (first, or by the watchdog) ended in."""
    match outcome:
        case SessionDispatched(attempt=attempt):
            DISPATCHES.labels("first" if attempt <= 1 else "redispatch").inc()
        case SessionDispatchFailed(code=code):
            DISPATCH_FAILURES.labels(code).inc()
