"""LiveKit participant tokens for frontends: join one room only, for a short time."""

from __future__ import annotations

from datetime import timedelta

from livekit import api


def participant_token(
    api_key: str, api_secret: str, *, room_name: str, identity: str, ttl_s: int, name: str | None = None
) -> str:
    """Mint a JWT that lets ``identity`` join ``room_name`` and nothing else."""
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(timedelta(seconds=ttl_s))
        .with_grants(api.VideoGrants(room_join=True, room=room_name, can_publish=True, can_subscribe=True))
    )
    if name:
        token = token.with_name(name)
    return token.to_jwt()
