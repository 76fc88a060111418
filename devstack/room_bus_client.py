"""A participant on the LiveKit simulator's room bus (``GET /sim/rtc``, JSON frames; see livekit_sim/README.md).

Joins with a participant token, waits for the ``joined`` frame, then queues every frame it receives. Used by
the demo's frontends (devstack.demo.room_bus) and by the tests that play a user or a bot in a room.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

Frame = dict[str, Any]
SOCKET_CLOSED: Frame = {"type": "socket_closed"}  # queued by this client, last, when the socket ends


class JoinError(Exception):
    """The room could not be joined; ``reason`` is a short category for a report (``join_timeout``, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        """``reason``: a category for reports; ``detail``: what happened."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RoomClosedError(ConnectionError):
    """The room connection ended before the frame (packet) waited for arrived."""


def bus_url(livekit_url: str) -> str:
    """The room-bus WebSocket URL of a simulator at ``livekit_url`` (http(s):// or ws(s)://)."""
    base = livekit_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            base = ws + base[len(http) :]
    return base + "/sim/rtc"


class BusParticipant:
    """One joined participant: the ``joined`` frame, and every later frame in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, joined: Frame) -> None:
        """Read frames from ``ws`` (already joined) in the background until ``close``."""
        self.ws = ws
        self.joined = joined
        self.closed_reason: str | None = None  # from a ``disconnected`` frame
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()  # SOCKET_CLOSED last
        self._reader = asyncio.create_task(self._read(), name="room-bus-reader")

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    continue  # not a frame: the ones waited for are well-formed
                if isinstance(frame, dict):
                    if frame.get("type") == "disconnected":
                        self.closed_reason = str(frame.get("reason"))
                    self.frames.put_nowait(frame)
        finally:
            self.frames.put_nowait(SOCKET_CLOSED)

    async def next_frame(self, kind: str, timeout: float | None = None, topic: str | None = None) -> Frame:  # noqa: ASYNC109 -- the tests' deadline per frame
        """The next frame of ``kind`` (and ``topic``), skipping others; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame is SOCKET_CLOSED:
                    self.frames.put_nowait(frame)  # every later call sees the close too
                    raise RoomClosedError(f"room bus closed ({self.closed_reason or 'socket ended'})")
                if frame.get("type") == kind and (topic is None or frame.get("topic") == topic):
                    return frame

    @staticmethod
    def payload(frame: Frame) -> bytes:
        """The raw bytes of a ``data`` frame."""
        return base64.b64decode(frame["payload"])

    async def close(self) -> None:
        """Close the socket (the simulator announces that the participant left)."""
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def join(session: aiohttp.ClientSession, livekit_url: str, token: str, *, timeout_s: float) -> BusParticipant:
    """Join the room bus of the simulator at ``livekit_url`` with ``token``; JoinError if refused or silent."""
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        async with asyncio.timeout(timeout_s):
            ws = await session.ws_connect(bus_url(livekit_url), params={"access_token": token})
            joined = await ws.receive_json()
    except aiohttp.WSServerHandshakeError as exc:
        raise JoinError(f"join_refused_{exc.status}", exc.message) from exc
    except TimeoutError as exc:
        await _close(ws)
        raise JoinError("join_timeout", f"no 'joined' frame within {timeout_s:.0f}s") from exc
    except (aiohttp.ClientError, ValueError, TypeError) as exc:
        await _close(ws)
        raise JoinError("join_error", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(joined, dict) or joined.get("type") != "joined":
        await _close(ws)
        raise JoinError("join_error", f"the bus answered {joined!r} instead of 'joined'")
    return BusParticipant(ws, joined)


async def _close(ws: aiohttp.ClientWebSocketResponse | None) -> None:
    if ws is not None:
        await ws.close()


@asynccontextmanager
async def joined_bus(livekit_url: str, token: str, *, timeout_s: float = 5.0) -> AsyncIterator[BusParticipant]:
    """A participant on the room bus for the block, with its own HTTP session."""
    async with aiohttp.ClientSession() as session:
        member = await join(session, livekit_url, token, timeout_s=timeout_s)
        try:
            yield member
        finally:
            await member.close()
