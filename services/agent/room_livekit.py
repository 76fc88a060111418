"""The production room: the job's LiveKit room, joined over WebRTC through the JobContext."""

from __future__ import annotations

import asyncio

from livekit import rtc
from livekit.agents import JobContext

from services.agent.room import RoomClosed


class LiveKitRoom:
    """:class:`~services.agent.room.AgentRoom` on top of a livekit-agents :class:`JobContext`."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    async def connect(self) -> None:
        """Join the room (``ctx.connect()`` is idempotent)."""
        await self._ctx.connect()

    async def wait_for_participant(self, timeout: float) -> str:  # noqa: ASYNC109 - the deadline is part of the port
        """Return the first standard/SIP/connector participant's identity (agents are not users)."""
        async with asyncio.timeout(timeout):
            try:
                participant = await self._ctx.wait_for_participant()
            except RuntimeError as exc:  # livekit raises RuntimeError when the room disconnects
                raise RoomClosed(str(exc)) from exc
        return participant.identity

    async def publish_data(self, payload: bytes, *, topic: str, reliable: bool = True) -> None:
        """Send ``payload`` from the agent participant to everyone in the room."""
        await self._ctx.room.local_participant.publish_data(payload, reliable=reliable, topic=topic)

    async def wait_until_over(self, identity: str | None) -> None:
        """Return when ``identity`` leaves (None: only on disconnect) or the room disconnects."""
        room = self._ctx.room
        if not room.isconnected():
            return
        over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def _finish(*_: object) -> None:
            if not over.done():
                over.set_result(None)

        def _on_left(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == identity:
                _finish()

        room.on("participant_disconnected", _on_left)
        room.on("disconnected", _finish)
        try:
            if identity is not None and identity not in {p.identity for p in room.remote_participants.values()}:
                return
            await over
        finally:
            room.off("participant_disconnected", _on_left)
            room.off("disconnected", _finish)

    async def disconnect(self) -> None:
        """Leave the room if connected."""
        if self._ctx.room.isconnected():
            await self._ctx.room.disconnect()
