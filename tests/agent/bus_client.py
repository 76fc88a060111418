"""A test participant on the simulator's room bus (devstack.room_bus_client) and the tokens it joins with."""

from __future__ import annotations

from livekit import api

from devstack.room_bus_client import BusParticipant
from devstack.room_bus_client import joined_bus as join_bus

__all__ = ["BusParticipant", "join_bus", "participant_token"]


def participant_token(
    room: str, identity: str, *, kind: str = "standard", key: str = "devkey", secret: str = "secret"
) -> str:
    """A join token like the API hands to frontends."""
    token = api.AccessToken(key, secret).with_identity(identity).with_kind(kind)  # type: ignore[arg-type]
    return token.with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt()
