"""A frontend in a simulator room: the room bus (``GET /sim/rtc``, JSON frames; see livekit_sim/README.md)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json

import aiohttp

from devstack.demo.rooms import JoinError, RoomClosedError, http_url

_CLOSED = None  # queue sentinel: the socket ended


def bus_url(livekit_url: str) -> str:
    """The room-bus WebSocket URL of a simulator at ``livekit_url`` (http(s):// or ws(s)://)."""
    base = http_url(livekit_url).rstrip("/")
    return "ws" + base[len("http") :] + "/sim/rtc"


class BusRoom:
    """:class:`~devstack.demo.rooms.FrontendRoom` over the simulator's room bus."""

    def __init__(self, session: aiohttp.ClientSession, livekit_url: str, token: str) -> None:
        """Join through ``session`` (shared, not closed here) with the participant ``token``."""
        self._session = session
        self._url = bus_url(livekit_url)
        self._token = token
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._packets: asyncio.Queue[tuple[str | None, bytes] | None] = asyncio.Queue()
        self.closed_reason: str | None = None

    async def connect(self, timeout_s: float) -> None:
        """Open the socket and wait for the ``joined`` frame."""
        try:
            async with asyncio.timeout(timeout_s):
                self._ws = await self._session.ws_connect(self._url, params={"access_token": self._token})
                joined = await self._ws.receive_json()
        except aiohttp.WSServerHandshakeError as exc:
            raise JoinError(f"join_refused_{exc.status}", exc.message) from exc
        except TimeoutError as exc:
            await self.disconnect()
            raise JoinError("join_timeout", f"no 'joined' frame within {timeout_s:.0f}s") from exc
        except (aiohttp.ClientError, ValueError, TypeError) as exc:
            await self.disconnect()
            raise JoinError("join_error", f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(joined, dict) or joined.get("type") != "joined":
            await self.disconnect()
            raise JoinError("join_error", f"the bus answered {joined!r} instead of 'joined'")
        self._reader = asyncio.create_task(self._read(self._ws), name="demo-bus-reader")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(message.data)
                    if frame.get("type") == "data":
                        self._packets.put_nowait((frame.get("topic"), base64.b64decode(frame["payload"])))
                    elif frame.get("type") == "disconnected":
                        self.closed_reason = str(frame.get("reason"))
                except (ValueError, KeyError, AttributeError, binascii.Error):
                    continue  # not a frame we understand: the packets we wait for are well-formed
        finally:
            self._packets.put_nowait(_CLOSED)

    async def receive(self, topic: str) -> bytes:
        """The next data packet on ``topic``."""
        while True:
            packet = await self._packets.get()
            if packet is _CLOSED:
                self._packets.put_nowait(_CLOSED)  # every later call sees the close too
                raise RoomClosedError(f"room bus closed ({self.closed_reason or 'socket ended'})")
            if packet[0] == topic:
                return packet[1]

    async def disconnect(self) -> None:
        """Close the socket (the simulator announces that the participant left)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
