"""``python -m services.agent``: run the agent worker until SIGTERM/SIGINT (a second signal forces exit)."""

from __future__ import annotations

import asyncio
import os
import signal

import structlog
from redis.asyncio import Redis

from services.agent.settings import AgentSettings
from services.agent.worker import serve
from services.runtime.logging import configure_logging
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
    await serve(settings, stop)


if __name__ == "__main__":
    agent_settings = AgentSettings()
    configure_logging("agent", agent_settings.log_level, agent_settings.log_json)
    asyncio.run(main(agent_settings))
