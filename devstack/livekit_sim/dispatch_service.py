"""``livekit.AgentDispatchService`` methods, as ``pkg/service/agent_dispatch_service.go`` and ``rtc.Room``.

``CreateDispatch`` is not de-duplicated: every call adds a dispatch and launches a job. Its id is
derived from the ``X-Livekit-Request-Id`` header (the SDK keeps it across its own retries), so a
replayed request replaces the dispatch entry but still launches another job, as the server does.
"""

from __future__ import annotations

import hashlib
import string

from livekit.protocol import agent_dispatch, room

from .errors import TwirpError, no_room_server
from .jobs import JobLauncher
from .room_service import ensure_admin
from .rooms import RoomManager
from .state import SimState, new_id
from .twirp import Call, Route

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def dispatch_id(request_id: str) -> str:
    """``DeterministicID(AgentDispatchPrefix, requestID)``: stable per request id, random without one."""
    if not request_id:
        return new_id("AD_")
    number = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:9], "big")
    chars = []
    for _ in range(12):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "AD_" + "".join(chars)


class DispatchService:
    """Explicit agent dispatch."""

    def __init__(self, state: SimState, rooms: RoomManager, launcher: JobLauncher) -> None:
        self._state = state
        self._rooms = rooms
        self._launcher = launcher

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
        """Add a dispatch (creating the room if needed) and launch its job."""
        ensure_admin(call, req.room)
        if not req.room:
            raise TwirpError("invalid_argument", "no room name")
        target, _ = self._rooms.get_or_create(room.CreateRoomRequest(name=req.room))
        dispatch = self._state.add_dispatch(
            target,
            agent_dispatch.AgentDispatch(
                id=dispatch_id(call.request_id),
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
        """Remove a dispatch and terminate its jobs."""
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        if target is None:
            raise no_room_server()
        dispatch = target.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise TwirpError("not_found", "dispatch ID not found")
        job_ids = {job.id for job in dispatch.state.jobs}
        await self._launcher.terminate_jobs(lambda job: job.id in job_ids)
        return dispatch

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
