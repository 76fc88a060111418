"""The agent worker's Prometheus metrics, served on ``METRICS_PORT`` beside livekit-agents' own ``lk_agents_*``.

Per-session stage times are the session store's (it sees every stage, whichever process ran the job): a job
process (``AGENT_JOB_EXECUTOR=process``) has no registry the worker's endpoint could read anyway. The worker itself
tells whether it is registered with LiveKit: with none registered under the agent name, LiveKit drops every job
silently, which is what the "no worker registered" alert watches.
"""

from __future__ import annotations

import asyncio

from livekit.agents import AgentServer
from prometheus_client import Gauge

from services.agent.settings import AgentSettings
from services.runtime.metrics_server import MetricsServer, start_metrics_server

WORKER_REGISTERED = Gauge(
    "agentready_agent_worker_registered",
    "1 while this worker is registered with LiveKit under LIVEKIT_AGENT_NAME (0 while it connects or reconnects).",
)
ACTIVE_JOBS = Gauge("agentready_agent_active_jobs", "Jobs (sessions) this worker runs now.")


def watch_worker(server: AgentServer, registered: asyncio.Event, settings: AgentSettings) -> MetricsServer | None:
    """Read the worker's registration and jobs at each scrape; serve the metrics if ``METRICS_PORT`` is set."""

    def is_registered() -> float:
        # livekit-agents sets _connecting while it (re)connects and re-registers; no public flag says so.
        return float(registered.is_set() and not getattr(server, "_connecting", False))

    WORKER_REGISTERED.set_function(is_registered)
    ACTIVE_JOBS.set_function(lambda: float(len(server.active_jobs)))
    if not settings.metrics_port:
        return None
    return start_metrics_server(settings.metrics_host, settings.metrics_port)


def unwatch_worker(metrics: MetricsServer | None) -> None:
    """The worker stopped: it is no longer registered; stop serving."""
    WORKER_REGISTERED.set_function(lambda: 0.0)
    ACTIVE_JOBS.set_function(lambda: 0.0)
    if metrics is not None:
        metrics.close()
