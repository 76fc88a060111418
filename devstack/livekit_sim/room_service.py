"""``livekit.RoomService`` methods, with the grants and errors of ``pkg/service/roomservice.go``."""

from __future__ import annotations

from livekit.protocol import models, room

from .errors import TwirpError, invalid_argument, no_room_server, permission_denied, psrpc_error, room_not_found
from .room_bus import RoomBus
from .rooms import RoomManager
from .state import MAX_METADATA_SIZE, MAX_ROOM_NAME_LENGTH, SimState
from .twirp import Call, Route


def ensure_create(call: Call) -> None:
    """``EnsureCreatePermission``: ``video.roomCreate``."""
    video = call.claims.video if call.claims else None
    if video is None or not video.room_create:
        raise permission_denied()


def ensure_list(call: Call) -> None:
    """``EnsureListPermission``: ``video.roomList``."""
    video = call.claims.video if call.claims else None
    if video is None or not video.room_list:
        raise permission_denied()


def ensure_admin(call: Call, room_name: str) -> None:
    """``EnsureAdminPermission``: ``video.roomAdmin`` for exactly this room."""
    video = call.claims.video if call.claims else None
    if video is None or not video.room_admin or video.room != room_name:
        raise permission_denied()


class RoomService:
    """Rooms and participants."""

    def __init__(self, state: SimState, rooms: RoomManager, bus: RoomBus) -> None:
        self._state = state
        self._rooms = rooms
        self._bus = bus

    def routes(self) -> dict[str, Route]:
        """Method name -> route."""
        return {
            "CreateRoom": Route(room.CreateRoomRequest, self.create_room),
            "ListRooms": Route(room.ListRoomsRequest, self.list_rooms),
            "DeleteRoom": Route(room.DeleteRoomRequest, self.delete_room),
            "ListParticipants": Route(room.ListParticipantsRequest, self.list_participants),
            "GetParticipant": Route(room.RoomParticipantIdentity, self.get_participant),
            "RemoveParticipant": Route(room.RoomParticipantIdentity, self.remove_participant),
            "SendData": Route(room.SendDataRequest, self.send_data),
            "UpdateRoomMetadata": Route(room.UpdateRoomMetadataRequest, self.update_room_metadata),
        }

    async def create_room(self, req: room.CreateRoomRequest, call: Call) -> models.Room:
        """Get-or-create: an existing room is returned unchanged. Sizes are checked first, as the server does."""
        ensure_create(call)
        if len(req.name) > MAX_ROOM_NAME_LENGTH:
            raise psrpc_error("invalid_argument", f"room name length exceeds limits: max length {MAX_ROOM_NAME_LENGTH}")
        if len(req.metadata.encode()) > MAX_METADATA_SIZE or any(
            len(a.metadata.encode()) > MAX_METADATA_SIZE for a in req.agents
        ):
            raise invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        target, _ = self._rooms.get_or_create(req)
        return target.to_proto()

    async def list_rooms(self, req: room.ListRoomsRequest, call: Call) -> room.ListRoomsResponse:
        """All rooms, or those named."""
        ensure_list(call)
        names = set(req.names)
        rooms = [r.to_proto() for r in self._state.rooms.values() if not names or r.name in names]
        return room.ListRoomsResponse(rooms=rooms)

    async def delete_room(self, req: room.DeleteRoomRequest, call: Call) -> room.DeleteRoomResponse:
        """Close the room; a missing room is ``not_found``."""
        ensure_create(call)
        if not await self._rooms.close(req.room, "room_deleted"):
            raise room_not_found()
        return room.DeleteRoomResponse()

    async def list_participants(self, req: room.ListParticipantsRequest, call: Call) -> room.ListParticipantsResponse:
        """Connected participants; a missing room lists none."""
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        participants = [p.to_proto() for p in target.participants.values()] if target else []
        return room.ListParticipantsResponse(participants=participants)

    async def get_participant(self, req: room.RoomParticipantIdentity, call: Call) -> models.ParticipantInfo:
        """One participant, or ``not_found``."""
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        participant = target.participants.get(req.identity) if target else None
        if participant is None:
            raise psrpc_error("not_found", "participant does not exist")
        return participant.to_proto()

    async def remove_participant(self, req: room.RoomParticipantIdentity, call: Call) -> room.RemoveParticipantResponse:
        """Disconnect a participant, or ``not_found``."""
        ensure_admin(call, req.room)
        if not await self._bus.disconnect(req.room, req.identity, "removed"):
            raise psrpc_error("not_found", "participant does not exist")
        return room.RemoveParticipantResponse()

    async def send_data(self, req: room.SendDataRequest, call: Call) -> room.SendDataResponse:
        """Deliver data from the server (no sender) to the room's participants."""
        ensure_admin(call, req.room)
        if req.nonce and len(req.nonce) != 16:
            raise TwirpError(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes"
            )
        if req.room not in self._state.rooms:
            raise no_room_server()
        await self._bus.send_data(
            req.room,
            req.data,
            topic=req.topic if req.HasField("topic") else None,
            reliable=req.kind == models.DataPacket.RELIABLE,
            destinations=list(req.destination_identities),
            sender=None,
        )
        return room.SendDataResponse()

    async def update_room_metadata(self, req: room.UpdateRoomMetadataRequest, call: Call) -> models.Room:
        """Set the room's metadata; a missing room is ``not_found``. The size is checked before the grant."""
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        ensure_admin(call, req.room)
        target = self._state.rooms.get(req.room)
        if target is None:
            raise room_not_found()
        target.info.metadata = req.metadata
        return target.to_proto()
