"""Plain fakes implementing the agent's ports (room, publisher, speaker) for readiness tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from contracts.events import Event


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

    async def say(self, text: str) -> None:
        self.said.append(text)
