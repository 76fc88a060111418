"""LiveKit adapter: the real livekit-api client, errors sorted into transient and permanent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from livekit import api
from opentelemetry.trace import SpanKind

from contracts.flow_events import watcher_role
from contracts.job import room_metadata
from services.dispatcher.livekit_tokens import reuse_tokens
from services.dispatcher.metrics import LIVEKIT_ERRORS
from services.dispatcher.ports import JobState, LiveKitNotFoundError, PermanentLiveKitError, TransientLiveKitError
from services.runtime import tracing

T = TypeVar("T")

# Retrying helps for these; any other 4xx (bad credentials, missing grant, bad argument) is permanent.
_TRANSIENT_CODES = frozenset({"unavailable", "deadline_exceeded", "resource_exhausted"})
_LIVE_JOB = frozenset({api.JobStatus.JS_PENDING, api.JobStatus.JS_RUNNING})


class LiveKitRoomsClient:
    """Rooms and dispatches through the server API, at most ``max_in_flight`` requests at a time.

    ``connect`` makes the livekit-api client on first use: it opens an aiohttp session, which needs the running
    event loop, so the client can be built before the loop (in the composition root) and connect inside it.
    """

    def __init__(
        self,
        connect: Callable[[], api.LiveKitAPI],
        agent_name: str,
        room_options: api.CreateRoomRequest,
        max_in_flight: int,
        *,
        dispatch_with_room: bool = True,
    ) -> None:
        self._connect = connect
        self._client: api.LiveKitAPI | None = None
        self._agent_name = agent_name
        self._room_options = room_options
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # an empty agent name would ask for the automatic dispatch every new room gets anyway
        self._dispatch_with_room = dispatch_with_room and bool(agent_name)

    @property
    def _lk(self) -> api.LiveKitAPI:
        if self._client is None:
            self._client = reuse_tokens(self._connect())
        return self._client

    async def aclose(self) -> None:
        """Close the livekit-api client, if one was made."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def agent_name(self) -> str:
        """The agent name every dispatch is made for."""
        return self._agent_name

    async def ensure_room(self, room_name: str, metadata: str) -> None:
        """CreateRoom is get-or-create on the server, so a retry or redelivery is harmless."""
        await self._call(self._lk.room.create_room(self._room_request(room_name, metadata)), f"create room {room_name}")

    async def create_room_and_dispatch(self, room_name: str, metadata: str) -> str:
        """One CreateRoom with our agent in it (``dispatch_with_room``): livekit-server dispatches a new room's
        agents as it makes the room (rtc.NewRoom) and none for a room that exists, so a repeated call adds no second
        agent, and the answer (the room) does not name the dispatch: "". Else CreateRoom, then CreateDispatch."""
        if not self._dispatch_with_room:
            await self.ensure_room(room_name, metadata)
            return await self.create_dispatch(room_name, metadata)
        request = self._room_request(room_name, metadata)
        request.agents.append(api.RoomAgentDispatch(agent_name=self._agent_name, metadata=metadata))
        await self._call(self._lk.room.create_room(request), f"create room {room_name} with agent {self._agent_name!r}")
        return ""

    def _room_request(self, room_name: str, metadata: str) -> api.CreateRoomRequest:
        request = api.CreateRoomRequest()
        request.CopyFrom(self._room_options)
        request.name = room_name
        # Room metadata is readable by every participant: never put the agent's credential there.
        request.metadata = room_metadata(metadata)
        return request

    async def our_dispatches(self, room_name: str) -> list[str]:
        """ListDispatch, filtered to our agent name (other agents may serve the same room)."""
        existing = await self._call(self._lk.agent_dispatch.list_dispatch(room_name), f"list dispatches of {room_name}")
        return [str(dispatch.id) for dispatch in existing if dispatch.agent_name == self._agent_name]

    async def create_dispatch(self, room_name: str, metadata: str) -> str:
        """CreateDispatch: LiveKit adds an agent on every call, so callers look for ours first."""
        created = await self._call(
            self._lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=self._agent_name, room=room_name, metadata=metadata)
            ),
            f"dispatch agent {self._agent_name!r} to {room_name}",
        )
        return str(created.id)

    async def agent_present(self, room_name: str) -> bool:
        """An AGENT participant of our agent name (or of no stated name) is connected to the room."""
        listed = await self._call(
            self._lk.room.list_participants(api.ListParticipantsRequest(room=room_name)),
            f"list participants of {room_name}",
        )
        return any(
            p.kind == api.ParticipantInfo.AGENT
            and p.attributes.get("lk.agent_name", self._agent_name) == self._agent_name
            for p in listed.participants
        )

    async def room_watchers(self, room_name: str) -> dict[str, str]:
        """Identity -> role of the room's watchers (participants whose attributes carry a watcher role)."""
        listed = await self._call(
            self._lk.room.list_participants(api.ListParticipantsRequest(room=room_name)),
            f"list participants of {room_name}",
        )
        found = {p.identity: watcher_role(p.attributes) for p in listed.participants}
        return {identity: role for identity, role in found.items() if role is not None}

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        """SendData from the server (no sender participant), reliable, to ``destinations`` only."""
        request = api.SendDataRequest(
            room=room_name,
            data=payload,
            kind=api.DataPacket.Kind.RELIABLE,
            topic=topic,
            destination_identities=destinations,
        )
        await self._call(self._lk.room.send_data(request), f"send {topic} data in {room_name}")

    async def replace_dispatch(self, room_name: str, metadata: str, listed: tuple[str, ...] | None = None) -> str:
        """Delete our stale dispatches (their jobs end with them; ``listed``: as listed just before, else listed
        now), then create one; the room may have closed meanwhile, so it is ensured first (ListDispatch on a missing
        room answers ``unavailable``; a dispatch listed before it closed is gone with it: not found is fine)."""
        await self.ensure_room(room_name, metadata)
        await self._delete_our_dispatches(room_name, listed)
        return await self.create_dispatch(room_name, metadata)

    async def remove_room(self, room_name: str, *, agent_joined: bool = False) -> None:
        """Delete our dispatches and the room. A missing room is success: its dispatches went with it.

        ``agent_joined``: the room's one dispatch of ours has its agent in the room, so no job of it is still being
        offered: DeleteRoom alone (the server deletes the room's dispatches and jobs with it and disconnects the
        agent), one call instead of four (ListRooms, ListDispatch, DeleteDispatch, DeleteRoom)."""
        if agent_joined:
            with contextlib.suppress(LiveKitNotFoundError):
                await self._call(
                    self._lk.room.delete_room(api.DeleteRoomRequest(room=room_name)), f"delete room {room_name}"
                )
            return
        listed = await self._call(
            self._lk.room.list_rooms(api.ListRoomsRequest(names=[room_name])), f"look up room {room_name}"
        )
        if not listed.rooms:
            return
        await self._delete_our_dispatches(room_name)
        with contextlib.suppress(LiveKitNotFoundError):
            await self._call(
                self._lk.room.delete_room(api.DeleteRoomRequest(room=room_name)), f"delete room {room_name}"
            )

    async def job_state(self, room_name: str, dispatch_id: str) -> JobState:
        """From one ListDispatch: the dispatch's newest job a worker accepted, as the server snapshots it (0:
        unknown), and our dispatches. ``dispatch_id`` "" (made with the room, its id unknown): any of ours."""
        listed = await self._call(self._lk.agent_dispatch.list_dispatch(room_name), f"list dispatches of {room_name}")
        started = [
            job.state.started_at / 1e9
            for dispatch in listed
            if (dispatch.id == dispatch_id if dispatch_id else dispatch.agent_name == self._agent_name)
            for job in dispatch.state.jobs
            if job.state.status in _LIVE_JOB and job.state.started_at > 0
        ]
        ours = tuple(str(dispatch.id) for dispatch in listed if dispatch.agent_name == self._agent_name)
        return JobState(max(started) if started else None, ours)

    async def existing_rooms(self, names: list[str]) -> set[str]:
        """ListRooms filtered by name: the open ones among ``names``."""
        if not names:
            return set()
        listed = await self._call(self._lk.room.list_rooms(api.ListRoomsRequest(names=names)), "list rooms")
        return {room.name for room in listed.rooms}

    async def _delete_our_dispatches(self, room_name: str, listed: tuple[str, ...] | None = None) -> None:
        for dispatch_id in await self.our_dispatches(room_name) if listed is None else listed:
            with contextlib.suppress(LiveKitNotFoundError):
                await self._call(
                    self._lk.agent_dispatch.delete_dispatch(dispatch_id, room_name),
                    f"delete dispatch {dispatch_id} of {room_name}",
                )

    async def _call(self, call: Awaitable[T], what: str) -> T:
        # a client span in the session's trace, where the dispatcher's time goes (``what`` names the room: an attribute)
        attributes = {"livekit.call": what}
        with tracing.span("livekit server api", kind=SpanKind.CLIENT, attributes=attributes, only_within=True):
            return await self._answer(call, what)

    async def _answer(self, call: Awaitable[T], what: str) -> T:
        async with self._in_flight:
            try:
                return await call
            except api.TwirpError as exc:
                message = f"{what}: LiveKit answered {exc.status} {exc.code}: {exc.message}"
                if exc.status >= 500 or exc.status == 429 or exc.code in _TRANSIENT_CODES:
                    LIVEKIT_ERRORS.labels("transient", exc.code).inc()
                    raise TransientLiveKitError(message) from exc
                if exc.code == "not_found":
                    LIVEKIT_ERRORS.labels("not_found", exc.code).inc()
                    raise LiveKitNotFoundError(message) from exc
                LIVEKIT_ERRORS.labels("permanent", exc.code).inc()
                raise PermanentLiveKitError(_advice(exc.status, message)) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                LIVEKIT_ERRORS.labels("unreachable", "").inc()
                raise TransientLiveKitError(f"{what}: cannot reach LiveKit ({type(exc).__name__}: {exc})") from exc


def _advice(status: int, message: str) -> str:
    # The server answers 401 both for a bad token and for a missing grant ("permissions denied").
    if status in (401, 403):
        return (
            f"{message} (check LIVEKIT_API_KEY / LIVEKIT_API_SECRET and that the key may create rooms and dispatches)"
        )
    return message
