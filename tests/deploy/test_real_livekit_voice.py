"""Against a real LiveKit server: the user hears the agent's greeting, and ``agent.ready`` follows it.

The frontend joins with the real livekit rtc SDK without auto-subscribing, so the test decides when it starts
listening: until it subscribes to the agent's audio track no greeting plays and no ``agent.ready`` arrives; after,
it receives non-silent audio (eSpeak NG, the default voice, no accounts) and then ``agent.ready``.
"""

from __future__ import annotations

import array
import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field

import pytest
from livekit import api, rtc

from contracts.datachannel import AgentFailedPayload, AgentReadyPayload
from devstack.livekit_server import RunningLiveKit
from services.agent.worker import running_worker
from tests.deploy.test_real_livekit import TOPIC, agent_settings, frontend_token, job_metadata, keep_livekit_env

__all__ = ["keep_livekit_env"]  # the fixture, used below by name

LOUD_RMS = 200.0  # 16-bit samples: speech is in the thousands, a silent track is 0
NOT_READY_FOR_S = 2.0  # how long the test keeps the agent waiting for a listener
DEADLINE_S = 60.0


@dataclass
class Heard:
    """What the frontend received, each with its arrival time (time.monotonic)."""

    loud_frames: list[tuple[float, float]] = field(default_factory=list)  # (arrival, seconds of audio)
    ready_at: float | None = None
    ready: rtc.DataPacket | None = None
    got_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def loud_seconds(self, before: float | None = None, after: float | None = None) -> float:
        """Seconds of non-silent audio that arrived in the given window."""
        return sum(
            s for at, s in self.loud_frames if (before is None or at <= before) and (after is None or at > after)
        )


def rms(frame: rtc.AudioFrame) -> float:
    """Root mean square of a frame's 16-bit samples."""
    samples = array.array("h", bytes(frame.data))
    return math.sqrt(sum(x * x for x in samples) / len(samples)) if samples else 0.0


async def listen(track: rtc.Track, heard: Heard) -> None:
    """Read the agent's audio until cancelled, keeping the non-silent frames."""
    stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
    try:
        async for event in stream:
            if rms(event.frame) > LOUD_RMS:
                heard.loud_frames.append((time.monotonic(), event.frame.duration))
    finally:
        await stream.aclose()


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_the_user_hears_the_greeting_and_ready_follows_it_never_before_subscribing(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    settings = agent_settings(real_livekit, redis_url, agent_tts="espeak", agent_listener_wait_seconds=30.0)
    metadata = job_metadata(f"real-voice-{uuid.uuid4().hex[:10]}")
    heard = Heard()
    listeners: list[asyncio.Task[None]] = []
    agent_audio: asyncio.Future[rtc.RemoteTrackPublication] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and heard.ready is None:
            heard.ready, heard.ready_at = packet, time.monotonic()
            heard.got_ready.set()

    def on_published(publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        agent_kind = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        if agent_kind and publication.kind == rtc.TrackKind.KIND_AUDIO and not agent_audio.done():
            agent_audio.set_result(publication)

    def on_subscribed(track: rtc.Track, *_: object) -> None:
        listeners.append(asyncio.create_task(listen(track, heard)))

    token = frontend_token(settings, metadata.room_name)
    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=metadata.room_name))
        room = rtc.Room()
        room.on("data_received", on_data)
        room.on("track_published", on_published)
        room.on("track_subscribed", on_subscribed)
        await room.connect(settings.livekit_ws_url, token, rtc.RoomOptions(auto_subscribe=False))
        try:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=settings.livekit_agent_name, room=metadata.room_name, metadata=metadata.to_json()
                )
            )
            publication = await asyncio.wait_for(agent_audio, timeout=DEADLINE_S)
            # The agent is in the room with its audio track; the user has not subscribed: no greeting, no ready.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(heard.got_ready.wait(), timeout=NOT_READY_FOR_S)
            publication.set_subscribed(True)
            subscribed_at = time.monotonic()
            await asyncio.wait_for(heard.got_ready.wait(), timeout=DEADLINE_S)
            ready_at = heard.ready_at
            assert ready_at is not None
            # the audio that was still in flight (the receiver's jitter buffer) when ready arrived
            await asyncio.sleep(0.5)  # bounded: collect frames already on their way; the check is below
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            await room.disconnect()
            await lk.room.delete_room(api.DeleteRoomRequest(room=metadata.room_name))

    assert heard.ready is not None
    payload = AgentReadyPayload.model_validate_json(heard.ready.data)
    assert (payload.sessionId, payload.greeting) == (metadata.session_id, metadata.greeting)
    assert heard.loud_frames, "the greeting was silent"
    first_loud = heard.loud_frames[0][0]
    assert subscribed_at < first_loud < ready_at
    before, after = heard.loud_seconds(before=ready_at), heard.loud_seconds(after=ready_at)
    print(f"voice: loud audio {before:.2f} s before agent.ready, {after:.2f} s after; "
          f"first audio {first_loud - subscribed_at:.3f} s after subscribing")  # fmt: skip
    assert before >= 0.8, f"only {before:.2f} s of audible greeting before agent.ready"
    assert after <= 0.25, f"{after:.2f} s of the greeting arrived after agent.ready"


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("keep_livekit_env")
async def test_a_user_who_never_subscribes_gets_agent_failed_at_listener_subscribed(
    real_livekit: RunningLiveKit, redis_url: str
) -> None:
    settings = agent_settings(real_livekit, redis_url, agent_listener_wait_seconds=1.5)
    metadata = job_metadata(f"real-deaf-{uuid.uuid4().hex[:10]}")
    received: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == TOPIC and not received.done():
            received.set_result(packet)

    token = frontend_token(settings, metadata.room_name)
    async with (
        running_worker(settings),
        api.LiveKitAPI(settings.livekit_http_url, settings.livekit_api_key, settings.livekit_api_secret) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name=metadata.room_name))
        room = rtc.Room()
        room.on("data_received", on_data)
        await room.connect(settings.livekit_ws_url, token, rtc.RoomOptions(auto_subscribe=False))
        try:
            await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=settings.livekit_agent_name, room=metadata.room_name, metadata=metadata.to_json()
                )
            )
            packet = await asyncio.wait_for(received, timeout=DEADLINE_S)
        finally:
            await room.disconnect()
            await lk.room.delete_room(api.DeleteRoomRequest(room=metadata.room_name))
    payload = AgentFailedPayload.model_validate_json(packet.data)
    assert (payload.sessionId, payload.stage) == (metadata.session_id, "listener_subscribed")
    assert payload.reason == "nobody subscribed to the agent's audio within 1.5 s"
