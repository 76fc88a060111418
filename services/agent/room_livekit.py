"""The production room: the job's LiveKit room, joined over WebRTC through the JobContext."""

from __future__ import annotations

import asyncio

from livekit import rtc
from livekit.agents import JobContext

from contracts.flow_events import is_watcher
from services.agent.room import RoomClosed

# Who can be "the user": people (standard), phone calls (SIP) and connectors; never agents or egress.
USER_KINDS = frozenset(
    {
        rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        rtc.ParticipantKind.PARTICIPANT_KIND_CONNECTOR,
    }
)


class LiveKitRoom:
    """:class:`~services.agent.room.AgentRoom` on top of a livekit-agents :class:`JobContext`."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    async def connect(self) -> None:
        """Join the room (``ctx.connect()`` is idempotent)."""
        await self._ctx.connect()

    async def wait_for_participant(self, timeout: float) -> str:  # noqa: ASYNC109 - the deadline is part of the port
        """Return the first active standard/SIP/connector participant that is not a watcher (agents are not users,
        nor are monitors/supervisors/admins, whose token carries the ``agentready.role`` attribute)."""
        room = self._ctx.room
        if not room.isconnected():
            raise RoomClosed("not connected to the room")
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def _consider(participant: rtc.RemoteParticipant) -> None:
            if participant.kind in USER_KINDS and not is_watcher(participant.attributes) and not found.done():
                found.set_result(participant.identity)

        def _on_state(state: int) -> None:
            if state == rtc.ConnectionState.CONN_DISCONNECTED and not found.done():
                found.set_exception(RoomClosed("room disconnected while waiting for the user"))

        room.on("participant_active", _consider)
        room.on("connection_state_changed", _on_state)
        try:
            for participant in list(room.remote_participants.values()):
                if participant.state == rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE:
                    _consider(participant)
            async with asyncio.timeout(timeout):
                return await found
        finally:
            room.off("participant_active", _consider)
            room.off("connection_state_changed", _on_state)

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
