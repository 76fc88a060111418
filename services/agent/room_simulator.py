"""The dev/test room: the LiveKit simulator's room bus (JSON over one WebSocket, no media).

Protocol: ``GET {url}/sim/rtc?access_token=<participant JWT>``; the server sends ``joined`` (with the
participants already there), then ``participant_joined`` / ``participant_left`` / ``data``; the client
sends ``data`` frames with a base64 payload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from contracts.flow_events import is_watcher
from services.agent.room import RoomClosed

log = structlog.get_logger(__name__)

JOIN_TIMEOUT_SECONDS = 10.0


def bus_url(url: str) -> str:
    """Return the room-bus WebSocket URL for a simulator base URL given as http(s):// or ws(s)://."""
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    return url.rstrip("/") + "/sim/rtc"


class SimulatorRoom:
    """:class:`~services.agent.room.AgentRoom` over the simulator's room bus."""

    def __init__(self, url: str, token: str, *, join_timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        self._url = bus_url(url)
        self._token = token
        self._join_timeout = join_timeout
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._users: dict[str, dict[str, Any]] = {}  # identity -> participant, agents and watchers excluded
        self._changed = asyncio.Condition()
        self._closed = asyncio.Event()
        self.identity: str | None = None

    async def connect(self) -> None:
        """Open the bus WebSocket and wait for the ``joined`` frame."""
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(self._url, params={"access_token": self._token}, heartbeat=15.0)
            async with asyncio.timeout(self._join_timeout):
                joined = await self._ws.receive_json()
        except BaseException:
            await self.disconnect()
            raise
        if joined.get("type") != "joined":
            await self.disconnect()
            raise RoomClosed(f"room bus answered {joined.get('type')!r} instead of 'joined'")
        self.identity = joined.get("identity")
        for participant in joined.get("participants", []):
            self._add(participant)
        self._reader = asyncio.create_task(self._read(self._ws), name="sim-room-reader")

    def _add(self, participant: dict[str, Any]) -> None:
        identity = participant.get("identity")
        if not isinstance(identity, str) or identity == self.identity or participant.get("kind") == "agent":
            return
        if is_watcher(participant.get("attributes") or {}):
            return  # a monitor/supervisor/admin watching the session is not the user
        self._users[identity] = participant

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    log.warning("room_bus_bad_frame", data=msg.data[:200])
                    continue
                kind = frame.get("type")
                async with self._changed:
                    if kind == "participant_joined":
                        self._add(frame.get("participant", {}))
                    elif kind == "participant_left":
                        self._users.pop(frame.get("identity", ""), None)
                    self._changed.notify_all()
        finally:
            self._closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def wait_for_participant(self, timeout: float) -> str:  # noqa: ASYNC109 - the deadline is part of the port
        """Return the first participant that is neither an agent nor a watcher; TimeoutError after ``timeout`` s."""
        if self._closed.is_set():  # the bus closed: users it knew of are gone too
            raise RoomClosed("room bus closed")
        async with asyncio.timeout(timeout), self._changed:
            while not self._users:
                if self._closed.is_set():
                    raise RoomClosed("room bus closed while waiting for the user")
                await self._changed.wait()
            return next(iter(self._users))

    async def wait_for_listener(self) -> None:
        """The bus has no media: a user who joined counts as listening."""

    async def play(self, duration_s: float, started: Callable[[], None]) -> None:
        """No media either: real time passes while the speech would play."""
        started()
        await asyncio.sleep(duration_s)

    async def publish_data(self, payload: bytes, *, topic: str, reliable: bool = True) -> None:
        """Send a ``data`` frame to every other participant."""
        if self._ws is None or self._ws.closed:
            raise RoomClosed("not connected to the room bus")
        frame = {
            "type": "data",
            "payload": base64.b64encode(payload).decode("ascii"),
            "topic": topic,
            "reliable": reliable,
            "destination_identities": [],
        }
        await self._ws.send_str(json.dumps(frame))

    async def wait_until_over(self, identity: str | None) -> None:
        """Return when ``identity`` left (None: when the bus closes) or the bus closed."""
        async with self._changed:
            while not self._closed.is_set() and (identity is None or identity in self._users):
                await self._changed.wait()

    async def disconnect(self) -> None:
        """Close the WebSocket and the HTTP session; idempotent."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._closed.set()
