"""Bring your own agent: ``AGENT_FACTORY=package.module:function`` receives the flow and returns the livekit-agents
``Agent`` (instructions, tools, handlers) that the session's ``AgentSession`` runs.

The factory is resolved once per job process; a spec that cannot be used fails every job at stage "providers" with
the reason, before the user waits for a greeting. Without a factory the session runs :func:`default_agent`. The
readiness protocol speaks the greeting itself: an Agent should not greet again in ``on_enter``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from livekit.agents import Agent

from services.agent.flow_client import FlowConfig
from services.agent.speech_models import ProviderError

AgentFactory = Callable[[FlowConfig], Agent]
DEFAULT_INSTRUCTIONS = "You are a friendly, concise voice assistant."


def default_agent(flow: FlowConfig) -> Agent:
    """The agent without a factory: the flow definition's ``instructions``, else a polite default."""
    return Agent(instructions=str(flow.definition.get("instructions") or DEFAULT_INSTRUCTIONS))


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
