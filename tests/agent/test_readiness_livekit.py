"""Readiness through ``LiveKitRoom`` on livekit-agents' own test doubles (fake JobContext, mock rtc.Room)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from unittest.mock import call

import pytest
from livekit.agents.ipc.mock_room import create_mock_room
from livekit.agents.testing import fake_job_context

from services.agent.readiness import ReadinessOptions, run_readiness
from services.agent.room_livekit import LiveKitRoom
from services.agent.speech_models import ProviderError
from tests.agent.fakes import FakePublisher, FakeVoice

FIXED_NOW = datetime(2025, 6, 7, 8, 9, 10, 111000, tzinfo=UTC)
FIXED_ISO = "2025-06-07T08:09:10.111Z"
FAST = ReadinessOptions(user_wait_seconds=0.2, stage_timeout_seconds=2.0, greeting_timeout_seconds=2.0)


def fresh_mock_room() -> Any:
    """A new mock room each time (``create_mock_room`` itself is cached, so shared between callers)."""
    return create_mock_room.__wrapped__()


def metadata(session_id: str) -> str:
    return json.dumps(
        {
            "sessionId": session_id,
            "flowId": "flow-1",
            "orgId": "org-1",
            "roomName": "room-1",
            "greeting": "Welcome!",
            "correlationId": "corr-1",
        }
    )


async def run_with(mock_room: Any, raw: str, voice: FakeVoice, publisher: FakePublisher) -> Any:
    with fake_job_context(room=mock_room, job_metadata=raw, job_id="job-lk") as ctx:
        return await run_readiness(
            job_id=ctx.job.id,
            raw_metadata=ctx.job.metadata,
            room=LiveKitRoom(ctx),
            publisher=publisher,
            voice=voice,
            options=FAST,
            clock=lambda: FIXED_NOW,
        )


async def test_ready_payload_goes_through_local_participant_publish_data() -> None:
    sid = f"s-{uuid.uuid4().hex}"
    room, publisher = fresh_mock_room(), FakePublisher()
    outcome = await run_with(room, metadata(sid), FakeVoice(), publisher)
    assert outcome.ready and outcome.user_identity == "mock_user"
    expected = f'{{"type":"agent.ready","sessionId":"{sid}","greeting":"Welcome!","timestamp":"{FIXED_ISO}"}}'
    assert room.local_participant.publish_data.await_args_list == [
        call(expected.encode(), reliable=True, topic="agent-status")
    ]
    assert publisher.types() == ["agent.joined", "agent.ready"]


async def test_provider_error_sends_agent_failed_through_publish_data() -> None:
    sid = f"s-{uuid.uuid4().hex}"
    room, publisher = fresh_mock_room(), FakePublisher()
    outcome = await run_with(room, metadata(sid), FakeVoice(prepare_error=ProviderError("no voice")), publisher)
    assert outcome.failed_stage == "providers"
    expected = (
        f'{{"type":"agent.failed","sessionId":"{sid}","stage":"providers",'
        f'"reason":"ProviderError: no voice","timestamp":"{FIXED_ISO}"}}'
    )
    assert room.local_participant.publish_data.await_args_list == [
        call(expected.encode(), reliable=True, topic="agent-status")
    ]
    assert publisher.types() == ["agent.joined", "agent.failed"]


async def test_no_participant_in_time_sends_agent_failed() -> None:
    sid = f"s-{uuid.uuid4().hex}"
    room, publisher = fresh_mock_room(), FakePublisher()
    room.remote_participants = {}
    outcome = await run_with(room, metadata(sid), FakeVoice(), publisher)
    assert (outcome.failed_stage, outcome.reason) == ("wait_for_user", "no user joined within 0.2 s")
    ((args, kwargs),) = room.local_participant.publish_data.await_args_list
    assert json.loads(args[0]) == {
        "type": "agent.failed",
        "sessionId": sid,
        "stage": "wait_for_user",
        "reason": "no user joined within 0.2 s",
        "timestamp": FIXED_ISO,
    }
    assert kwargs == {"reliable": True, "topic": "agent-status"}


async def test_bad_metadata_sends_nothing_on_the_data_channel() -> None:
    room, publisher = fresh_mock_room(), FakePublisher()
    outcome = await run_with(room, "{broken", FakeVoice(), publisher)
    assert outcome.failed_stage == "metadata"
    assert room.local_participant.publish_data.await_args_list == []
    assert publisher.events == []


async def test_a_join_whose_wait_times_out_is_never_cancelled_and_leaving_waits_for_it() -> None:
    """livekit.rtc's Room.connect is not cancellation-safe: cancelled after the server answered, the FFI panics 15 s
    later and SIGTERMs the whole worker. A connect stage that times out must leave the join running, and leaving
    the room must wait for it, then disconnect."""
    room, release, seen = fresh_mock_room(), asyncio.Event(), []

    async def slow_connect(*_args: Any, **_kwargs: Any) -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            seen.append("join cancelled")
            raise
        seen.append("joined")

    room.connect = slow_connect
    with fake_job_context(room=room, job_metadata=metadata(f"s-{uuid.uuid4().hex}"), job_id="job-lk") as ctx:
        ctx._connected = False  # the fake context pretends the caller joined already: join for real here
        agent_room = LiveKitRoom(ctx)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await agent_room.connect()
        leaving = asyncio.create_task(agent_room.disconnect())
        done, _ = await asyncio.wait({leaving}, timeout=0.1)
        assert not done and ctx.room.disconnect.call_count == 0  # not left while the join is in flight
        release.set()
        async with asyncio.timeout(5.0):
            await leaving
    assert seen == ["joined"]
    ctx.room.disconnect.assert_awaited_once()
