"""An example of your own agent behind the readiness protocol: ``AGENT_FACTORY=examples.greeter_agent:build``.

The factory receives the flow (its greeting, definition and agent settings, from the API's flow init) and returns
the livekit-agents ``Agent`` for the conversation after the user has heard the greeting.
"""

from __future__ import annotations

from livekit.agents import Agent, function_tool

from services.agent.flow_client import FlowConfig


class GreeterAgent(Agent):
    """Answers as the flow's definition instructs, and can tell the caller the opening hours."""

    @function_tool()
    async def opening_hours(self) -> str:
        """Tell the caller when the office is open."""
        return "Monday to Friday, 9:00 to 17:00."


def build(flow: FlowConfig) -> Agent:
    """The agent for ``flow``: instructions from its definition, else a polite default."""
    instructions = str(flow.definition.get("instructions") or "You are a friendly, concise voice assistant.")
    return GreeterAgent(instructions=instructions)
