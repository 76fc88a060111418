"""The API's Prometheus metrics: admission and overload refusals, requests in flight, open SSE streams (``/metrics``).

Sessions accepted and their stage times are the session store's (it sees every session once, whichever replica
took the POST); the API counts only what never reaches a stream.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ADMISSION_REFUSALS = Counter(
    "agentready_admission_refusals_total",
    "POST .../sessions answered 429; reason: org_capacity (MAX_OPEN_SESSIONS_PER_ORG) or publishable_rate "
    "(PUBLISHABLE_RATE_PER_MIN of one publishable key and client address).",
    ["reason"],
)
SSE_CONNECTIONS = Gauge("agentready_sse_connections", "Open GET /api/sessions/{id}/events streams of this replica.")
OVERLOAD_REFUSALS = Counter(
    "agentready_api_overload_refusals_total",
    "Requests answered 503 at once because MAX_REQUESTS_IN_FLIGHT requests were already being served.",
)
REQUESTS_IN_FLIGHT = Gauge(
    "agentready_api_requests_in_flight",
    "Requests this replica is serving (not yet answered; probes, /metrics and open SSE streams not counted).",
)
