"""The agent's voice in a real LiveKit room: one published audio track, played into at real time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livekit import rtc

from services.agent.providers import Speech

TRACK_NAME = "agent-voice"
SAMPLE_RATE = 48000  # WebRTC's own rate: 10 ms frames are whole samples (22050 Hz from eSpeak NG would not be)
FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms frames
PUBLISH_TIMEOUT_S = 10.0


class LiveKitVoice:
    """Publishes the agent's microphone track and plays speech into it."""

    def __init__(self) -> None:
        self._source = rtc.AudioSource(SAMPLE_RATE, 1)
        self._publication: rtc.LocalTrackPublication | None = None

    async def publish(self, participant: rtc.LocalParticipant) -> None:
        """Publish the track, so that the user's SDK can subscribe to it while the agent gets ready."""
        track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            self._publication = await participant.publish_track(track, options)

    async def wait_for_listener(self) -> None:
        """Return once someone subscribed to the track (at once if someone already has)."""
        if self._publication is None:
            raise RuntimeError("the agent's audio track was never published")
        await self._publication.wait_for_subscription()

    async def play(self, speech: Speech, started: Callable[[], None]) -> None:
        """Play ``speech`` at real time (the source's queue paces the frames); return once its playout ended."""
        pcm = speech.pcm
        if speech.sample_rate != SAMPLE_RATE:
            resampler = rtc.AudioResampler(speech.sample_rate, SAMPLE_RATE)
            frames = [*resampler.push(bytearray(pcm)), *resampler.flush()]
            pcm = b"".join(bytes(frame.data) for frame in frames)
        step = FRAME_SAMPLES * 2
        started()  # the first frame goes out at once: the source's queue is empty between greetings
        for offset in range(0, len(pcm), step):
            chunk = pcm[offset : offset + step].ljust(step, b"\0")
            await self._source.capture_frame(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, FRAME_SAMPLES))
        await self._source.wait_for_playout()

    async def aclose(self) -> None:
        """Release the native audio source."""
        await self._source.aclose()
