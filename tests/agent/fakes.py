"""Plain fakes implementing the agent's ports (room, publisher, speaker) for readiness tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.events import Event
from services.agent.providers import Speech


@dataclass
class SentData:
    """One ``publish_data`` call as the room saw it."""

    payload: bytes
    topic: str
    reliable: bool


@dataclass
class FakeRoom:
    """An in-memory room: a user may already be there, or never come."""

    user: str | None = "user-1"
    connect_error: Exception | None = None
    connected: bool = False
    sent: list[SentData] = field(default_factory=list)
    left: asyncio.Event = field(default_factory=asyncio.Event)
    listening: asyncio.Event = field(default_factory=asyncio.Event)  # set: the user subscribed to the agent's audio
    played: list[Speech] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.user is not None:
            self.listening.set()

    async def connect(self) -> None:
        if self.connect_error is not None:
            raise self.connect_error
        self.connected = True

    async def wait_for_participant(self, timeout: float) -> str:
        if self.user is None:  # nobody ever comes
            async with asyncio.timeout(timeout):
                await asyncio.Event().wait()
        assert self.user is not None
        return self.user

    async def wait_for_listener(self) -> None:
        await self.listening.wait()

    async def play(self, speech: Speech, started: Callable[[], None]) -> None:
        assert self.connected, "play before connect"
        started()
        await asyncio.sleep(speech.duration_s)  # the playout takes real time
        self.played.append(speech)

    async def publish_data(self, payload: bytes, *, topic: str, reliable: bool = True) -> None:
        assert self.connected, "publish_data before connect"
        self.sent.append(SentData(payload, topic, reliable))

    async def wait_until_over(self, identity: str | None) -> None:
        await self.left.wait()

    async def disconnect(self) -> None:
        self.connected = False


@dataclass
class FakePublisher:
    """Keeps published events; can be made to fail like an unreachable broker."""

    error: Exception | None = None
    events: list[Event] = field(default_factory=list)

    async def publish(self, event: Event) -> None:
        if self.error is not None:
            raise self.error
        self.events.append(event)

    def types(self) -> list[str]:
        return [str(getattr(e, "type", "")) for e in self.events]


@dataclass
class FakeSpeaker:
    """Records what it said; ``prepare_error`` makes the providers stage fail."""

    prepare_error: Exception | None = None
    said: list[str] = field(default_factory=list)

    async def prepare(self) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error

    async def synthesize(self, text: str) -> Speech:
        self.said.append(text)
        return Speech(b"\x10\x00" * 480, 48000)  # 10 ms of a quiet tone
