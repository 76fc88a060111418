"""A frontend in a real LiveKit room: ``livekit.rtc.Room`` (WebRTC), subscribing to data and the agent's audio."""

from __future__ import annotations

import asyncio

from livekit import rtc

from devstack.demo.rooms import JoinError, Packet, RoomClosedError

_CLOSED = None  # queue sentinel: the room disconnected


class RtcRoom:
    """:class:`~devstack.demo.rooms.FrontendRoom` over the real rtc SDK, as a browser frontend would join."""

    def __init__(self, livekit_url: str, token: str) -> None:
        """Join ``livekit_url`` (ws(s):// or http(s)://; the SDK accepts both) with ``token``."""
        self._url = livekit_url
        self._token = token
        self._room = rtc.Room()
        self._packets: asyncio.Queue[tuple[str | None, Packet] | None] = asyncio.Queue()
        self._connected = False
        self._room.on("data_received", self._on_data)
        self._room.on("disconnected", self._on_disconnected)
        self._room.on("track_published", self._on_track)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        # The SDK resolves the sender LiveKit stamped; None is the server's SendData (or, rarely, a participant not
        # yet announced: never taken for the agent, whose kind must be known)
        sender = packet.participant
        from_agent = sender is not None and sender.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self._packets.put_nowait((packet.topic, Packet(packet.data, from_agent, sender is None)))

    def _on_track(self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        # The agent greets only once someone subscribed to its audio, as a browser frontend does at once.
        is_agent = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        if is_agent and publication.kind == rtc.TrackKind.KIND_AUDIO:
            publication.set_subscribed(True)

    def _on_disconnected(self, reason: object) -> None:
        self._packets.put_nowait(_CLOSED)

    async def connect(self, timeout_s: float) -> None:
        """Connect (signalling + WebRTC); only the agent's audio is subscribed to (no video, no other audio)."""
        options = rtc.RoomOptions(auto_subscribe=False)
        try:
            await asyncio.wait_for(self._room.connect(self._url, self._token, options), timeout=timeout_s)
        except TimeoutError as exc:
            await self.disconnect()
            raise JoinError("join_timeout", f"not connected within {timeout_s:.0f}s") from exc
        except rtc.ConnectError as exc:
            # the server refuses bad tokens during signalling: the SDK reports it as a ConnectError
            raise JoinError("join_refused", str(exc)) from exc
        self._connected = True
        for participant in list(self._room.remote_participants.values()):
            for publication in list(participant.track_publications.values()):
                self._on_track(publication, participant)

    async def receive(self, topic: str) -> Packet:
        """The next data packet on ``topic``, with its sender."""
        while True:
            packet = await self._packets.get()
            if packet is _CLOSED:
                self._packets.put_nowait(_CLOSED)
                raise RoomClosedError("the LiveKit room disconnected")
            if packet[0] == topic:
                return packet[1]

    async def disconnect(self) -> None:
        """Leave the room."""
        if self._connected or self._room.isconnected():
            self._connected = False
            await self._room.disconnect()
