"""The room bus, ``GET /sim/rtc``: presence and data packets over JSON WebSocket frames.

The simulator's stand-in for WebRTC (no media). Tokens are checked like the server's ``/rtc``;
the frame format is documented in this package's README.md.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from typing import Any

import structlog
from aiohttp import WSMsgType, web
from google.protobuf.json_format import ParseDict
from livekit.protocol import room

from .auth import Claims, TokenError, bearer_token, verify_token
from .rooms import RoomManager
from .state import Participant, SimState

log = structlog.get_logger("livekit_sim.bus")

KNOWN_KINDS = {"standard", "agent", "sip", "egress", "ingress"}


class JoinRefusedError(Exception):
    """The token does not allow this join; carries the HTTP status to answer with."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _create_request(name: str, claims: Claims) -> room.CreateRoomRequest:
    """The room a join creates: the token's ``roomConfig`` applies only when the room is new."""
    req = room.CreateRoomRequest(name=name)
    if claims.room_config:
        cfg = ParseDict(claims.room_config, room.RoomConfiguration(), ignore_unknown_fields=True)
        req.empty_timeout = cfg.empty_timeout
        req.departure_timeout = cfg.departure_timeout
        req.max_participants = cfg.max_participants
        req.metadata = cfg.metadata
        req.agents.extend(cfg.agents)
    return req


def _participant(claims: Claims) -> Participant:
    video = claims.video
    assert video is not None
    return Participant(
        identity=claims.identity,
        name=claims.name,
        kind=claims.kind if claims.kind in KNOWN_KINDS else "standard",
        metadata=claims.metadata,
        attributes=dict(claims.attributes),
        hidden=video.hidden,
        can_publish_data=video.can_publish_data,
        can_update_metadata=video.can_update_own_metadata,
    )


class RoomBus:
    """Participants' sockets by room and identity, and the fan-out between them."""

    def __init__(self, state: SimState, keys: dict[str, str], rooms: RoomManager, *, auto_create: bool = True) -> None:
        self._state = state
        self._auto_create = auto_create
        self._keys = keys
        self._rooms = rooms
        self._sockets: dict[str, dict[str, web.WebSocketResponse]] = {}
        rooms.add_close_listener(self.close_room)

    def authorize(self, request: web.Request) -> tuple[str, Claims]:
        """The room and claims of a join request, or :class:`JoinRefusedError` (401/403/400)."""
        try:
            token = bearer_token(request.headers.get("Authorization"), request.query.get("access_token"))
            claims = verify_token(token, self._keys) if token else None
        except TokenError as exc:
            raise JoinRefusedError(401, str(exc)) from exc
        if claims is None or claims.video is None or not claims.video.room_join:
            raise JoinRefusedError(401, "permissions denied")
        if not claims.identity:
            raise JoinRefusedError(400, "identity cannot be empty")
        wanted = request.query.get("room", "")
        if claims.video.room and wanted and wanted != claims.video.room:
            raise JoinRefusedError(403, f"token is for room {claims.video.room!r}, not {wanted!r}")
        name = claims.video.room or wanted
        if not name:
            raise JoinRefusedError(400, "no room name")
        # room.auto_create false: only a token that may create rooms joins one that does not exist
        if not self._auto_create and not claims.video.room_create and name not in self._state.rooms:
            raise JoinRefusedError(404, "requested room does not exist")
        return name, claims

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Join, relay frames until the socket closes, then leave."""
        try:
            name, claims = self.authorize(request)
        except JoinRefusedError as exc:
            return web.Response(status=exc.status, text=exc.text)
        target, _ = self._rooms.get_or_create(_create_request(name, claims))
        me = _participant(claims)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        previous = self._sockets.setdefault(name, {}).get(me.identity)
        if previous is not None:  # same identity joins again: the server kicks the older session
            await self._kick(name, me.identity, previous, "duplicate_identity")
        self._sockets[name][me.identity] = ws
        others = [p.to_json() for p in target.participants.values() if not p.hidden]
        self._state.join(target, me)
        await _send(ws, {"type": "joined", "room": name, "identity": me.identity, "participants": others})
        if not me.hidden:
            await self.broadcast(name, {"type": "participant_joined", "participant": me.to_json()}, exclude=me.identity)
        log.info("participant joined", room=name, identity=me.identity, kind=me.kind)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    try:
                        parsed = frame.json()
                    except ValueError:
                        await _send(ws, {"type": "error", "message": "frames must be JSON objects"})
                        continue
                    await self._on_frame(name, me, ws, parsed)
        finally:
            await self._leave(name, me, ws)
        return ws

    async def _leave(self, name: str, me: Participant, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(name, {})
        if sockets.get(me.identity) is not ws:
            return  # replaced by a newer session, or the room already closed
        del sockets[me.identity]
        target = self._state.rooms.get(name)
        if target is not None:
            self._state.leave(target, me.identity)
            await self._rooms.participant_left(name, me)
        if not me.hidden:
            await self.broadcast(name, {"type": "participant_left", "identity": me.identity})
        log.info("participant left", room=name, identity=me.identity)

    async def _on_frame(self, name: str, me: Participant, ws: web.WebSocketResponse, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "data":
            if not me.can_publish_data:
                await _send(ws, {"type": "error", "message": "not allowed to publish data"})
                return
            try:
                payload = base64.b64decode(frame.get("payload", ""), validate=True)
            except (binascii.Error, TypeError):
                await _send(ws, {"type": "error", "message": "payload must be base64"})
                return
            await self.send_data(
                name,
                payload,
                topic=frame.get("topic"),
                reliable=bool(frame.get("reliable", True)),
                destinations=list(frame.get("destination_identities") or []),
                sender=me,
            )
        elif kind == "set_attributes":
            if not me.can_update_metadata:
                await _send(ws, {"type": "error", "message": "not allowed to update own attributes"})
                return
            me.attributes.update({str(k): str(v) for k, v in (frame.get("attributes") or {}).items()})
            await self.broadcast(name, {"type": "participant_updated", "participant": me.to_json()})
        else:
            await _send(ws, {"type": "error", "message": f"unknown frame type {kind!r}"})

    async def send_data(
        self,
        name: str,
        payload: bytes,
        *,
        topic: str | None,
        reliable: bool,
        destinations: list[str],
        sender: Participant | None,
    ) -> int:
        """Deliver a data packet to the room (or only ``destinations``); never back to the sender.

        As livekit-server: the sender is the participant who sent it, never what a client claims; none for the server
        API's SendData, and none for a hidden participant (the server blanks its identity)."""
        named = sender if sender is not None and not sender.hidden else None
        frame = {
            "type": "data",
            "payload": base64.b64encode(payload).decode(),
            "topic": topic,
            "reliable": reliable,
            "sender": named.identity if named else None,
            "sender_kind": named.kind if named else None,  # what an SDK reads from the participant it resolves
        }
        wanted = set(destinations)
        delivered = 0
        for identity, ws in list(self._sockets.get(name, {}).items()):
            if (sender is not None and identity == sender.identity) or (wanted and identity not in wanted):
                continue
            delivered += await _send(ws, frame)
        return delivered

    async def broadcast(self, name: str, frame: dict[str, Any], exclude: str | None = None) -> None:
        """Send a frame to everyone in the room but ``exclude``."""
        for identity, ws in list(self._sockets.get(name, {}).items()):
            if identity != exclude:
                await _send(ws, frame)

    async def disconnect(self, name: str, identity: str, reason: str) -> bool:
        """Remove one participant (``RemoveParticipant``); False if not connected."""
        ws = self._sockets.get(name, {}).get(identity)
        if ws is None:
            return False
        await self._kick(name, identity, ws, reason)
        return True

    async def close_room(self, name: str, reason: str) -> None:
        """Disconnect everyone in a room that closed."""
        for identity, ws in list(self._sockets.pop(name, {}).items()):
            await _send(ws, {"type": "disconnected", "reason": reason})
            await ws.close()
            log.info("participant disconnected", room=name, identity=identity, reason=reason)

    async def _kick(self, name: str, identity: str, ws: web.WebSocketResponse, reason: str) -> None:
        await _send(ws, {"type": "disconnected", "reason": reason})
        sockets = self._sockets.get(name, {})
        if sockets.get(identity) is ws:
            del sockets[identity]
            target = self._state.rooms.get(name)
            if target is not None:
                left = self._state.leave(target, identity)
                if left is not None:
                    await self._rooms.participant_left(name, left)
                if left is not None and not left.hidden:
                    await self.broadcast(name, {"type": "participant_left", "identity": identity})
        await ws.close()

    async def close_all(self) -> None:
        """Close every socket (shutdown)."""
        for name in list(self._sockets):
            await self.close_room(name, "server_shutdown")


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> int:
    """Send one JSON frame; 1 if sent, 0 if the socket is already gone."""
    if ws.closed:
        return 0
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(frame)
        return 1
    return 0
