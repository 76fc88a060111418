"""Bring your own agent: AGENT_FACTORY resolves to a function of the flow returning a livekit-agents Agent."""

from __future__ import annotations

import re
import uuid

import pytest
from livekit.agents import Agent, JobExecutorType, JobProcess

from contracts.providers import ProviderChoice
from examples.greeter_agent import GreeterAgent
from services.agent.custom_agent import load_agent_factory
from services.agent.flow_client import FlowConfig
from services.agent.settings import AgentSettings
from services.agent.speech_models import ProviderError
from services.agent.voice import SimulatedVoice
from services.agent.worker import prepare_process, speech_defaults
from tests.agent.fakes import FakeRoom


def test_the_example_agent_gets_its_instructions_and_tools_from_the_flow() -> None:
    instructions = f"Be brief ({uuid.uuid4().hex})."
    agent = load_agent_factory("examples.greeter_agent:build")(FlowConfig("Hi", {"instructions": instructions}))
    assert isinstance(agent, GreeterAgent) and agent.instructions == instructions
    assert [tool.info.name for tool in agent.tools] == ["opening_hours"]
    default = load_agent_factory("examples.greeter_agent:build")(FlowConfig("Hi"))
    assert default.instructions == "You are a friendly, concise voice assistant."


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("examples.greeter_agent", "must look like package.module:function"),
        ("examples.no_such_module:build", "cannot import 'examples.no_such_module'"),
        ("examples.greeter_agent:no_such_function", "has no function 'no_such_function'"),
    ],
)
def test_an_unusable_factory_is_refused_with_the_reason(spec: str, reason: str) -> None:
    with pytest.raises(ProviderError, match=re.escape(reason)):
        load_agent_factory(spec)


def test_a_factory_that_returns_no_agent_is_refused() -> None:
    with pytest.raises(ProviderError, match="returned str, not a livekit-agents Agent"):
        load_agent_factory("builtins:str")(FlowConfig("Hi"))


async def test_an_unusable_factory_fails_the_providers_stage_of_every_job() -> None:
    settings = AgentSettings(dev_mode=True, agent_tts="silence", agent_factory="examples.nowhere:build")
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prepare_process(settings, proc)
    voice = SimulatedVoice(FakeRoom(), speech_defaults(settings), proc.userdata["setup_error"])
    with pytest.raises(ProviderError, match=re.escape("cannot import 'examples.nowhere'")):
        await voice.prepare(ProviderChoice())
    proc = JobProcess(executor_type=JobExecutorType.THREAD, user_arguments=None, http_proxy=None)
    prepare_process(settings.model_copy(update={"agent_factory": "examples.greeter_agent:build"}), proc)
    assert isinstance(proc.userdata["agent_factory"](FlowConfig("Hi")), Agent)
