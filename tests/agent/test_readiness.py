"""Unit tests of the readiness pipeline with plain fakes of the room, broker and voice."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.events import AgentFailed, AgentJoined, AgentReady
from contracts.providers import ProviderChoice
from services.agent.flow_client import FlowConfig
from services.agent.readiness import ReadinessOptions, ReadinessOutcome, run_readiness
from services.agent.speech_models import Defaults, ProviderError
from services.agent.voice import SimulatedVoice, Voice
from tests.agent.fakes import FakePublisher, FakeRoom, FakeVoice
from tests.polling import wait_until

FIXED_NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
FIXED_ISO = "2025-01-02T03:04:05.678Z"
FAST = ReadinessOptions(user_wait_seconds=0.2, stage_timeout_seconds=2.0, greeting_timeout_seconds=2.0)


def metadata(session_id: str, greeting: str = "Hello, how can I help?") -> str:
    return json.dumps(
        {
            "sessionId": session_id,
            "flowId": "flow-1",
            "orgId": "org-1",
            "roomName": f"room-{session_id}",
            "greeting": greeting,
            "correlationId": f"corr-{session_id}",
        }
    )


def new_session() -> str:
    return f"s-{uuid.uuid4().hex}"


async def readiness(
    room: FakeRoom,
    publisher: FakePublisher,
    *,
    job_id: str = "job-1",
    raw_metadata: str | None = None,
    voice: Voice | None = None,
    options: ReadinessOptions = FAST,
    **more: Any,
) -> ReadinessOutcome:
    """``run_readiness`` with the defaults of these tests: a new session's metadata, a FakeVoice, FAST."""
    return await run_readiness(
        job_id=job_id,
        raw_metadata=raw_metadata if raw_metadata is not None else metadata(new_session()),
        room=room,
        publisher=publisher,
        voice=voice if voice is not None else FakeVoice(),
        options=options,
        **more,
    )


async def test_ready_publishes_exact_payload_and_broker_events() -> None:
    sid = new_session()
    room, publisher, voice = FakeRoom(), FakePublisher(), FakeVoice()
    outcome = await readiness(
        room, publisher, job_id="job-1", raw_metadata=metadata(sid), voice=voice, clock=lambda: FIXED_NOW
    )
    assert outcome.ready and outcome.user_identity == "user-1"
    assert voice.said == ["Hello, how can I help?"]
    assert len(room.sent) == 1
    sent = room.sent[0]
    expected = (
        f'{{"type":"agent.ready","sessionId":"{sid}","greeting":"Hello, how can I help?","timestamp":"{FIXED_ISO}"}}'
    ).encode()
    assert sent.payload == expected
    assert (sent.topic, sent.reliable) == ("agent-status", True)
    joined, ready = publisher.events
    assert isinstance(joined, AgentJoined) and isinstance(ready, AgentReady)
    assert (joined.session_id, joined.room_name, joined.job_id) == (sid, f"room-{sid}", "job-1")
    assert joined.correlation_id == ready.correlation_id == f"corr-{sid}"
    stages = ["metadata", "joined", "connect", "providers", "wait_for_user"]
    stages += ["session_start", "listener_subscribed", "greeting", "announce", "total"]
    assert list(ready.stage_timings_ms) == stages
    assert ready.greeting == "Hello, how can I help?"


async def test_the_simulated_voice_lets_the_greetings_real_time_pass_before_ready() -> None:
    greeting = "x" * 100
    room, publisher = FakeRoom(), FakePublisher()
    voice = SimulatedVoice(room, Defaults(tts="silence", silence_ms_per_char=1.0))
    started = time.perf_counter()
    outcome = await readiness(room, publisher, raw_metadata=metadata(new_session(), greeting), voice=voice)
    assert outcome.ready
    assert time.perf_counter() - started >= 0.1
    assert outcome.stage_timings_ms["greeting"] >= 95.0


@pytest.mark.parametrize("raw", ["not json", "[]", "", json.dumps({"flowId": "f"})])
async def test_unusable_metadata_fails_without_a_session_to_report(raw: str) -> None:
    room, publisher = FakeRoom(), FakePublisher()
    outcome = await readiness(room, publisher, raw_metadata=raw)
    assert (outcome.ready, outcome.failed_stage) == (False, "metadata")
    assert publisher.events == [] and room.sent == [] and not room.connected


async def test_bad_metadata_with_a_session_id_reports_agent_failed() -> None:
    sid = new_session()
    room, publisher = FakeRoom(), FakePublisher()
    raw = json.dumps({"sessionId": sid, "correlationId": "c-1", "greeting": "hi"})
    outcome = await readiness(room, publisher, raw_metadata=raw)
    assert outcome.failed_stage == "metadata"
    (failed,) = publisher.events
    assert isinstance(failed, AgentFailed)
    assert (failed.session_id, failed.stage, failed.correlation_id) == (sid, "metadata", "c-1")
    assert "flowId" in failed.reason
    assert room.sent == []  # never connected, so nothing on the data channel


async def test_provider_error_fails_at_providers_on_both_channels() -> None:
    sid = new_session()
    room, publisher = FakeRoom(), FakePublisher()
    voice = FakeVoice(prepare_error=ProviderError("tts model missing"))
    outcome = await readiness(room, publisher, raw_metadata=metadata(sid), voice=voice, clock=lambda: FIXED_NOW)
    assert (outcome.failed_stage, outcome.reason) == ("providers", "ProviderError: tts model missing")
    assert publisher.types() == ["agent.joined", "agent.failed"]
    (sent,) = room.sent
    expected = (
        f'{{"type":"agent.failed","sessionId":"{sid}","stage":"providers",'
        f'"reason":"ProviderError: tts model missing","timestamp":"{FIXED_ISO}"}}'
    ).encode()
    assert sent.payload == expected
    assert (sent.topic, sent.reliable) == ("agent-status", True)
    assert voice.said == []


async def test_no_user_in_time_fails_at_wait_for_user() -> None:
    sid = new_session()
    room, publisher = FakeRoom(user=None), FakePublisher()
    outcome = await readiness(room, publisher, raw_metadata=metadata(sid))
    assert (outcome.failed_stage, outcome.reason) == ("wait_for_user", "no user joined within 0.2 s")
    failed = publisher.events[-1]
    assert isinstance(failed, AgentFailed) and failed.stage == "wait_for_user"
    assert json.loads(room.sent[0].payload)["type"] == "agent.failed"


async def test_wait_for_user_can_be_disabled() -> None:
    room, publisher = FakeRoom(user=None), FakePublisher()
    options = ReadinessOptions(wait_for_user=False, stage_timeout_seconds=2.0)
    outcome = await readiness(room, publisher, options=options)
    assert outcome.ready and outcome.user_identity is None
    assert "wait_for_user" not in outcome.stage_timings_ms


async def test_flow_init_hook_runs_before_the_greeting_and_can_fail() -> None:
    sid = new_session()
    room, publisher, voice = FakeRoom(), FakePublisher(), FakeVoice()

    async def initialise_flow(_: object) -> None:
        raise RuntimeError("api answered 503")

    outcome = await readiness(room, publisher, raw_metadata=metadata(sid), voice=voice, initialise_flow=initialise_flow)
    assert (outcome.failed_stage, outcome.reason) == ("flow_init", "RuntimeError: api answered 503")
    assert voice.said == []


async def test_flow_init_greeting_is_the_one_spoken_and_announced() -> None:
    sid = new_session()
    room, publisher, voice = FakeRoom(), FakePublisher(), FakeVoice()

    async def initialise_flow(_: object) -> FlowConfig:
        return FlowConfig(greeting="Greeting from the flow")

    outcome = await readiness(room, publisher, raw_metadata=metadata(sid), voice=voice, initialise_flow=initialise_flow)
    assert outcome.ready
    assert voice.said == ["Greeting from the flow"]
    assert b'"greeting":"Greeting from the flow"' in room.sent[0].payload
    assert "flow_init" in outcome.stage_timings_ms


async def test_the_flows_providers_are_built_before_the_user_waits_and_its_agent_talks_to_that_user() -> None:
    room, publisher, voice = FakeRoom(user=None), FakePublisher(), FakeVoice()
    raw = json.loads(metadata(new_session()))
    raw["providers"] = {"stt": "deepgram/nova-3", "tts": "espeak", "voice": "en-gb"}
    flow = FlowConfig(greeting="Hi", definition={"instructions": "Be brief."})

    async def initialise_flow(_: object) -> FlowConfig:
        return flow

    options, raw_metadata, init = ReadinessOptions(user_wait_seconds=5.0), json.dumps(raw), initialise_flow
    run = asyncio.create_task(
        readiness(room, publisher, raw_metadata=raw_metadata, initialise_flow=init, voice=voice, options=options)
    )
    await wait_until(lambda: bool(voice.providers), deadline_s=2.0, what="the providers stage")
    assert voice.providers == [ProviderChoice(stt="deepgram/nova-3", tts="espeak", voice="en-gb")]
    assert voice.started_with == []  # the conversation waits for the user and the flow
    room.join("user-7")
    outcome = await asyncio.wait_for(run, timeout=5.0)
    assert outcome.ready and voice.started_with == [(flow, "user-7")] and voice.said == ["Hi"]


async def test_connect_failure_reports_to_broker_only() -> None:
    room, publisher = FakeRoom(connect_error=ConnectionError("sfu unreachable")), FakePublisher()
    outcome = await readiness(room, publisher)
    assert outcome.failed_stage == "connect"
    assert publisher.types() == ["agent.joined", "agent.failed"]
    assert room.sent == []


async def test_unreachable_broker_fails_at_joined_without_raising() -> None:
    room, publisher = FakeRoom(), FakePublisher(error=ConnectionError("redis down"))
    outcome = await readiness(room, publisher)
    assert (outcome.failed_stage, outcome.reason) == ("joined", "ConnectionError: redis down")
    assert room.sent == [] and not room.connected


async def test_cancelled_job_still_reports_failure_then_cancels() -> None:
    sid = new_session()
    room, publisher = FakeRoom(user=None), FakePublisher()
    options = ReadinessOptions(user_wait_seconds=30.0)
    task = asyncio.create_task(readiness(room, publisher, raw_metadata=metadata(sid), options=options))
    await wait_until(lambda: room.connected, deadline_s=2.0, what="room connected")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed = publisher.events[-1]
    assert isinstance(failed, AgentFailed) and failed.stage == "wait_for_user"
    assert json.loads(room.sent[0].payload)["stage"] == "wait_for_user"


async def test_broker_failure_after_announcing_ready_does_not_contradict_the_frontend() -> None:
    class ReadyRejectingPublisher(FakePublisher):
        async def publish(self, event: object) -> None:
            if isinstance(event, AgentReady):
                raise ConnectionError("redis went away")
            await super().publish(event)  # type: ignore[arg-type]

    room, publisher = FakeRoom(), ReadyRejectingPublisher()
    outcome = await readiness(room, publisher)
    assert outcome.failed_stage == "ready"
    assert [json.loads(s.payload)["type"] for s in room.sent] == ["agent.ready"]
    assert publisher.types() == ["agent.joined", "agent.failed"]


async def test_the_greeting_waits_until_the_user_listens_and_ready_follows_its_playout() -> None:
    room, publisher, voice = FakeRoom(), FakePublisher(), FakeVoice()
    voice.listening.clear()  # the user joined but has not subscribed to the agent's audio yet
    run = asyncio.create_task(readiness(room, publisher, voice=voice))
    await wait_until(lambda: "agent.joined" in publisher.types(), deadline_s=2.0, what="agent.joined")
    await asyncio.sleep(0.05)  # bounded: give the pipeline the chance to (wrongly) greet early
    assert voice.said == [] and room.sent == [] and "agent.ready" not in publisher.types()
    voice.listening.set()
    outcome = await asyncio.wait_for(run, timeout=5.0)
    assert outcome.ready and voice.said == ["Hello, how can I help?"]
    ready = publisher.events[-1]
    assert isinstance(ready, AgentReady)
    assert ready.listener_subscribed_at is not None and ready.greeting_started_at is not None
    assert ready.greeting_finished_at is not None
    assert ready.listener_subscribed_at <= ready.greeting_started_at <= ready.greeting_finished_at
    assert ready.greeting_finished_at <= ready.occurred_at
    assert "listener_subscribed" in ready.stage_timings_ms


async def test_nobody_listening_in_time_fails_at_listener_subscribed() -> None:
    room, publisher, voice = FakeRoom(), FakePublisher(), FakeVoice()
    voice.listening.clear()
    options = ReadinessOptions(listener_wait_seconds=0.2, stage_timeout_seconds=2.0)
    outcome = await readiness(room, publisher, voice=voice, options=options)
    assert (outcome.ready, outcome.failed_stage) == (False, "listener_subscribed")
    assert outcome.reason == "nobody subscribed to the agent's audio within 0.2 s"
    assert voice.said == []
    failed = publisher.events[-1]
    assert isinstance(failed, AgentFailed) and failed.stage == "listener_subscribed"
