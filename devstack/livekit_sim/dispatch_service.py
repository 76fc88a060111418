"""``livekit.AgentDispatchService`` methods, as ``pkg/service/agent_dispatch_service.go`` and ``rtc.Room``.

``CreateDispatch`` is not de-duplicated: every call adds a dispatch (a random id, ``guid.New``) and launches a job.
``DeleteDispatch`` answers at once; the dispatch's jobs are terminated afterwards, once the offers in flight have
settled (so a job still being offered is terminated too), and an agent still in the room is removed.
"""

from __future__ import annotations

import asyncio

from livekit.protocol import agent_dispatch, room

from .errors import no_room_server, psrpc_error
from .jobs import JobLauncher
from .room_service import ensure_admin
from .rooms import RoomManager
from .state import MAX_METADATA_SIZE, SimState, new_id
from .twirp import Call, Route


class DispatchService:
    """Explicit agent dispatch."""

    def __init__(self, state: SimState, rooms: RoomManager, launcher: JobLauncher, *, auto_create: bool = True) -> None:
        self._state = state
        self._auto_create = auto_create
        self._rooms = rooms
        self._launcher = launcher
        self._cleanups: set[asyncio.Task[None]] = set()

    def routes(self) -> dict[str, Route]:
        """Method name -> route."""
        return {
            "CreateDispatch": Route(agent_dispatch.CreateAgentDispatchRequest, self.create_dispatch),
            "DeleteDispatch": Route(agent_dispatch.DeleteAgentDispatchRequest, self.delete_dispatch),
            "ListDispatch": Route(agent_dispatch.ListAgentDispatchRequest, self.list_dispatch),
        }

    async def create_dispatch(
        self, req: agent_dispatch.CreateAgentDispatchRequest, call: Call
    ) -> agent_dispatch.AgentDispatch:
        """Add a dispatch (creating the room if needed and auto_create allows it) and launch its job."""
        ensure_admin(call, req.room)
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise psrpc_error("invalid_argument", "metadata size exceeds limits")
        if not self._auto_create and req.room not in self._state.rooms:
            raise no_room_server()  # the dispatch goes to the room's topic, which no node serves
        target, _ = self._rooms.get_or_create(room.CreateRoomRequest(name=req.room))
        dispatch = self._state.add_dispatch(
            target,
            agent_dispatch.AgentDispatch(
                id=new_id("AD_"),
                agent_name=req.agent_name,
                room=req.room,
                metadata=req.metadata,
                restart_policy=req.restart_policy,
                deployment=req.deployment,
                attributes=req.attributes,
            ),
        )
        answer = agent_dispatch.AgentDispatch()
        answer.CopyFrom(dispatch)
        self._launcher.launch(target, dispatch)
        return answer

    async def delete_dispatch(
        self, req: agent_dispatch.DeleteAgentDispatchRequest, call: Call
    ) -> agent_dispatch.AgentDispatch:
        """Remove a dispatch and answer; its jobs are terminated in the background (``Room.DeleteAgentDispatch``)."""
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        if target is None:
            raise no_room_server()
        dispatch = target.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise psrpc_error("not_found", "dispatch ID not found")
        answer = agent_dispatch.AgentDispatch()
        answer.CopyFrom(dispatch)
        task = asyncio.get_running_loop().create_task(self._launcher.end_dispatch(dispatch))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return answer

    async def list_dispatch(
        self, req: agent_dispatch.ListAgentDispatchRequest, call: Call
    ) -> agent_dispatch.ListAgentDispatchResponse:
        """The room's dispatches (or the one with ``dispatch_id``)."""
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        if target is None:
            raise no_room_server()
        found = [d for d in target.dispatches.values() if not req.dispatch_id or d.id == req.dispatch_id]
        return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=found)
