"""Plain fakes implementing the agent's ports (room, publisher, voice) for readiness tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.events import Event
from contracts.providers import ProviderChoice
from services.agent.flow_client import FlowConfig


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
    played: list[float] = field(default_factory=list)  # durations, as the simulated voice plays them

    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.user is not None:
            self.listening.set()
            self.arrived.set()

    async def connect(self) -> None:
        if self.connect_error is not None:
            raise self.connect_error
        self.connected = True

    async def wait_for_participant(self, timeout: float) -> str:
        async with asyncio.timeout(timeout):  # without a user: nobody comes unless join() is called
            await self.arrived.wait()
        assert self.user is not None
        return self.user

    def join(self, user: str) -> None:
        """The user arrives."""
        self.user = user
        self.arrived.set()
        self.listening.set()

    async def wait_for_listener(self) -> None:
        await self.listening.wait()

    async def play(self, duration_s: float, started: Callable[[], None]) -> None:
        assert self.connected, "play before connect"
        started()
        await asyncio.sleep(duration_s)  # the playout takes real time
        self.played.append(duration_s)

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
class FakeVoice:
    """Records what it was asked; ``prepare_error`` makes the providers stage fail; ``listening`` is the user's
    subscription to the agent's audio (set: already subscribed)."""

    prepare_error: Exception | None = None
    providers: list[ProviderChoice] = field(default_factory=list)
    started_with: list[tuple[FlowConfig, str | None]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    listening: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def __post_init__(self) -> None:
        self.listening.set()

    async def prepare(self, choice: ProviderChoice) -> None:
        if self.prepare_error is not None:
            raise self.prepare_error
        self.providers.append(choice)

    async def start(self, flow: FlowConfig, user: str | None) -> None:
        assert self.providers, "start before prepare"
        self.started_with.append((flow, user))

    async def wait_for_listener(self) -> None:
        await self.listening.wait()

    async def say(self, text: str, started: Callable[[], None]) -> None:
        assert self.started_with, "say before start"
        started()
        await asyncio.sleep(0.01)  # the playout takes real time
        self.said.append(text)

    async def aclose(self) -> None:
        self.closed = True
