"""Bring your own agent: ``AGENT_FACTORY=package.module:function`` receives the flow and returns the livekit-agents
``Agent`` (instructions, tools, handlers) for the conversation after ``agent.ready``.

The factory is resolved once per job process; a spec that cannot be used fails every job at stage "providers" with
the reason, before the user waits for a greeting. After ready the Agent runs in an ``AgentSession`` in the room
until the job ends. Not yet done (issue 18): the session's STT/LLM/TTS from the flow's ``agentSettings``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from livekit import rtc
from livekit.agents import Agent, AgentSession, room_io

from services.agent.flow_client import FlowConfig
from services.agent.providers import ProviderError

AgentFactory = Callable[[FlowConfig], Agent]
log = structlog.get_logger(__name__)


def load_agent_factory(spec: str) -> AgentFactory:
    """Import the function ``spec`` (``package.module:function``) names; :class:`ProviderError` saying why not."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ProviderError(f"AGENT_FACTORY {spec!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderError(f"AGENT_FACTORY {spec!r}: cannot import {module_name!r} ({exc})") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ProviderError(f"AGENT_FACTORY {spec!r}: {module_name!r} has no function {attribute!r}")
    return checked(spec, factory)


def checked(spec: str, factory: Callable[[FlowConfig], object]) -> AgentFactory:
    """``factory``, refusing (with the spec in the reason) anything it returns that is not an ``Agent``."""

    def build(flow: FlowConfig) -> Agent:
        agent = factory(flow)
        if not isinstance(agent, Agent):
            raise ProviderError(f"AGENT_FACTORY {spec!r} returned {type(agent).__name__}, not a livekit-agents Agent")
        return agent

    return build


@asynccontextmanager
async def conversation(
    factory: AgentFactory | None, flow: FlowConfig | None, room: rtc.Room | None, timeout_s: float
) -> AsyncIterator[AgentSession[None] | None]:
    """While the block runs, ``factory(flow)`` runs in an ``AgentSession`` in ``room`` (nothing without a factory,
    a flow or a room: the simulator has no media); closed (bounded by ``timeout_s``) when the block ends."""
    if factory is None or flow is None or room is None:
        if room is not None:
            log.info("conversation_not_configured", why="no AGENT_FACTORY: the room is kept until the user leaves")
        yield None
        return
    missing = [name for name in ("stt", "llm") if not flow.agent_settings.get(name)]
    if missing:  # said once per job: the Agent runs, but cannot hear or answer yet
        log.warning("conversation_without_models", missing=missing)
    agent = factory(flow)
    session: AgentSession[None] = AgentSession()
    # the greeting's track is the agent's voice; the job, not the session, decides when the room is left
    options = room_io.RoomOptions(audio_output=False, close_on_disconnect=False)
    async with asyncio.timeout(timeout_s):
        await session.start(agent, room=room, room_options=options)
    log.info("conversation_started", agent=type(agent).__name__)
    try:
        yield session
    finally:
        try:
            async with asyncio.timeout(timeout_s):
                await session.aclose()
        except TimeoutError:
            log.warning("conversation_close_timed_out", timeout_s=timeout_s)
