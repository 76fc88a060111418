"""LiveKit participant tokens for frontends: join one room only, for a short time."""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from contracts.flow_events import ROLE_ATTRIBUTE


def participant_token(
    api_key: str,
    api_secret: str,
    *,
    room_name: str,
    identity: str,
    ttl_s: int,
    can_publish_data: bool = False,
    name: str | None = None,
) -> str:
    """Mint a JWT that lets ``identity`` join ``room_name`` and nothing else.

    Data publishing only when the flow allows it (``userCanPublishData``): a user who may publish data can send
    anyone in the room anything on any topic. ``ttl_s`` bounds the join only: LiveKit refreshes a connected
    participant's token itself."""
    grants = api.VideoGrants(
        room_join=True, room=room_name, can_publish=True, can_publish_data=can_publish_data, can_subscribe=True
    )
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl_s))
        .with_grants(grants)
    )
    if name:
        token = token.with_name(name)
    return token.to_jwt()


def watcher_token(api_key: str, api_secret: str, *, room_name: str, identity: str, role: str, ttl_s: int) -> str:
    """Mint a JWT for a monitor/supervisor/admin watching ``room_name``: it may only listen.

    Publishing (media and data) is disabled and the participant is hidden from the others, so the user
    never sees a watcher; the role travels as the participant attribute the relay and the agent read.
    """
    grants = api.VideoGrants(
        room_join=True,
        room=room_name,
        can_publish=False,
        can_publish_data=False,
        can_subscribe=True,
        can_update_own_metadata=False,
        hidden=True,
    )
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl_s))
        .with_grants(grants)
        .with_attributes({ROLE_ATTRIBUTE: role})
        .to_jwt()
    )
