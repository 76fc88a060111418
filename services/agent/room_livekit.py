"""The production room: the job's LiveKit room, joined over WebRTC through the JobContext."""

from __future__ import annotations

import asyncio

import structlog
from livekit import rtc
from livekit.agents import JobContext
from livekit.rtc._ffi_client import FfiClient

from contracts.flow_events import is_watcher
from services.agent.room import RoomClosed

log = structlog.get_logger(__name__)

# livekit-server announces a participant that publishes no track to the others only in its 3 s batch of updates
# (pkg/rtc/room.go, subscriberUpdateInterval), while an attribute change is announced at once. Without this the
# user's SDK can receive agent.ready from a participant it does not know yet (DataPacket.participant is None).
# The update travels on the signal connection and data on the data channel, so a packet sent the instant after can
# still overtake it: data waits until PRESENCE_SETTLE_S after the announcement (measured: the user sees the agent
# within ~3 ms; only a failure reported at once, or an instant greeting, ever waits).
PRESENCE_ATTRIBUTE = "agentready.agent"
PRESENCE_TIMEOUT_S = 5.0
PRESENCE_SETTLE_S = 0.25
# livekit.rtc's Room.connect is not cancellation-safe (livekit/python-sdks#784): cancelled once the server answered, it
# never sends ReadyForRoomEventRequest, and 15 s later the FFI panics ("timed out waiting for ReadyForRoomEventRequest
# after ConnectCallback") and SIGTERMs the whole process: with the thread executor, every job of the worker. A connect
# stage that times out, or a job shut down while joining, therefore never cancels the join: it runs on (bounded by
# the SDK's own timeouts) and leaving waits for it, at most JOIN_SETTLE_TIMEOUT_S, before disconnecting.
JOIN_SETTLE_TIMEOUT_S = 30.0
# publish_data returns once the packet is in the data channel's buffer, not once it is delivered: leaving the room
# at once (a job that fails right after reporting agent.failed) can drop it, so leaving waits this long after it.
DATA_LINGER_S = 0.5

# Who can be "the user": people (standard), phone calls (SIP) and connectors; never agents or egress.
USER_KINDS = frozenset(
    {
        rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        rtc.ParticipantKind.PARTICIPANT_KIND_CONNECTOR,
    }
)


def start_rtc_client() -> None:
    """Create livekit.rtc's process-wide FFI client now, in the worker's own thread, before any job thread can.

    ``FfiClient.instance`` is created lazily without a lock, and creating it releases the GIL (loading the native
    library, initialising it): job threads that join their first rooms at once can each create one. Events go to
    the last one only, so a room subscribed to another never gets its ConnectCallback, never answers
    ReadyForRoomEventRequest, and 15 s later the FFI panics and SIGTERMs the worker with all its jobs (seen on a
    real server in the first seconds of a run with the thread executor).
    """
    FfiClient.instance  # noqa: B018 - the property creates it


class LiveKitRoom:
    """:class:`~services.agent.room.AgentRoom` on top of a livekit-agents :class:`JobContext`."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        self._announced_at: float | None = None
        self._published_at: float | None = None
        self._joining: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        """Join the room (``ctx.connect()`` is idempotent) and make the server announce the agent at once; a
        cancelled wait leaves the join itself running (see JOIN_SETTLE_TIMEOUT_S)."""
        if self._joining is None:
            self._joining = asyncio.ensure_future(self._ctx.connect())
        await asyncio.shield(self._joining)
        try:
            async with asyncio.timeout(PRESENCE_TIMEOUT_S):
                await self._ctx.room.local_participant.set_attributes({PRESENCE_ATTRIBUTE: "joined"})
            self._announced_at = asyncio.get_running_loop().time()
        except Exception as exc:  # noqa: BLE001 - the job goes on regardless
            # without it the user still gets agent.ready, only perhaps before it knows the agent (see above)
            log.warning("agent_presence_not_announced", error=str(exc))

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
        """Send ``payload`` from the agent participant to everyone in the room (not before the user can know the
        agent: see PRESENCE_SETTLE_S)."""
        if self._announced_at is not None:
            settle = self._announced_at + PRESENCE_SETTLE_S - asyncio.get_running_loop().time()
            if settle > 0:
                await asyncio.sleep(settle)  # bounded by PRESENCE_SETTLE_S
        await self._ctx.room.local_participant.publish_data(payload, reliable=reliable, topic=topic)
        self._published_at = asyncio.get_running_loop().time()

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
        """Leave the room if connected (not before DATA_LINGER_S after the last packet sent), once a join still in
        flight has finished (bounded)."""
        if self._joining is not None and not self._joining.done():
            try:
                async with asyncio.timeout(JOIN_SETTLE_TIMEOUT_S):
                    await asyncio.shield(self._joining)
            except TimeoutError:
                log.warning("agent_join_unsettled", timeout_s=JOIN_SETTLE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - it failed: there is nothing to leave
                log.info("agent_join_failed", error=f"{type(exc).__name__}: {exc}")
        if self._ctx.room.isconnected():
            if self._published_at is not None:
                linger = self._published_at + DATA_LINGER_S - asyncio.get_running_loop().time()
                if linger > 0:
                    await asyncio.sleep(linger)  # bounded by DATA_LINGER_S
            await self._ctx.room.disconnect()
