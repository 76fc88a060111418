"""``python -m services.agent``: run the agent worker until SIGTERM/SIGINT (a second signal forces exit)."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog
from redis.asyncio import Redis

from services.agent.settings import AgentSettings
from services.agent.worker import serve
from services.runtime import tracing
from services.runtime.logging import configure_logging
from services.runtime.settings_errors import refused_settings
from services.runtime.streams import ensure_groups

log = structlog.get_logger("services.agent")


async def main(settings: AgentSettings) -> None:
    """Serve until a termination signal, then drain and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=sig.name)
            os._exit(1)
        log.info("shutdown_requested", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    # The agent only publishes, but creating the groups here too (from id 0) means an event it publishes
    # before a consumer's first start is never skipped.
    redis = Redis.from_url(settings.redis_url)
    try:
        await ensure_groups(redis)
    finally:
        await redis.aclose()
    await serve(settings, stop, freeze_heap=True)


LOOP_MONITOR_ENV = "LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS"


def quiet_loop_monitors(settings: AgentSettings) -> None:
    """With thread executors, turn livekit-agents' per-job event-loop monitor off unless configured.

    Every job thread then shares one GIL, so each job's monitor (one more thread per job) mostly measures
    the others and logs "event loop blocked" for all of them at once: under a backlog that storm of warnings
    from hundreds of threads left the worker's logging locks stuck and the worker deaf to new jobs.
    """
    if settings.agent_job_executor == "thread":
        os.environ.setdefault(LOOP_MONITOR_ENV, "0")


if __name__ == "__main__":
    with refused_settings("agent"):
        agent_settings = AgentSettings()
    quiet_loop_monitors(agent_settings)
    configure_logging("agent", agent_settings.log_level, agent_settings.log_json)
    tracing.configure("agent")
    asyncio.run(main(agent_settings))
