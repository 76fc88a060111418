"""Access tokens as the server checks them (livekit/protocol ``auth``) and the agent tokens it mints.

HS256 JWTs, ``iss`` = API key, signed with that key's secret, ``exp`` required, one minute of leeway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from livekit.protocol import agent, models

LEEWAY_SECONDS = 60
AGENT_TOKEN_TTL_SECONDS = 3600
AGENT_NAME_ATTRIBUTE = "lk.agent_name"


class TokenError(Exception):
    """The token is missing its key, badly signed, expired or malformed (the server answers 401)."""


@dataclass(frozen=True)
class VideoGrant:
    """The ``video`` claim fields the simulator enforces."""

    room_create: bool = False
    room_list: bool = False
    room_admin: bool = False
    room_join: bool = False
    room: str = ""
    agent: bool = False
    hidden: bool = False
    can_publish_data: bool = True
    can_update_own_metadata: bool = False


@dataclass(frozen=True)
class Claims:
    """A verified token: who it is for and what it allows."""

    api_key: str
    identity: str = ""
    name: str = ""
    kind: str = ""
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    video: VideoGrant | None = None
    room_config: dict[str, Any] | None = None


def _video_grant(raw: dict[str, Any] | None) -> VideoGrant | None:
    if raw is None:
        return None
    return VideoGrant(
        room_create=bool(raw.get("roomCreate", False)),
        room_list=bool(raw.get("roomList", False)),
        room_admin=bool(raw.get("roomAdmin", False)),
        room_join=bool(raw.get("roomJoin", False)),
        room=str(raw.get("room", "")),
        agent=bool(raw.get("agent", False)),
        hidden=bool(raw.get("hidden", False)),
        can_publish_data=bool(raw.get("canPublishData", True)),
        can_update_own_metadata=bool(raw.get("canUpdateOwnMetadata", False)),
    )


def verify_token(token: str, keys: dict[str, str]) -> Claims:
    """Verify ``token`` against the key set; raise :class:`TokenError` with the server's wording."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False}, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise TokenError("invalid authorization token") from exc
    api_key = str(unverified.get("iss", ""))
    secret = keys.get(api_key)
    if not secret:
        raise TokenError("invalid API key")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=api_key,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid authorization token: {exc}") from exc
    attributes = claims.get("attributes") or {}
    return Claims(
        api_key=api_key,
        identity=str(claims.get("sub") or claims.get("jti") or ""),
        name=str(claims.get("name", "")),
        kind=str(claims.get("kind", "")),
        metadata=str(claims.get("metadata", "")),
        attributes={str(k): str(v) for k, v in attributes.items()},
        video=_video_grant(claims.get("video")),
        room_config=claims.get("roomConfig"),
    )


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token from ``Authorization: Bearer``, else the ``access_token`` query parameter.

    Raises :class:`TokenError` when the header is present but not a bearer token.
    """
    if authorization:
        if not authorization.startswith("Bearer "):
            raise TokenError("invalid authorization header. Must start with Bearer ")
        return authorization[len("Bearer ") :]
    return query_token or None


def mint_agent_token(
    api_key: str,
    api_secret: str,
    room: str,
    response: agent.AvailabilityResponse,
    permissions: models.ParticipantPermission,
    agent_name: str,
) -> str:
    """The participant token the server puts in a ``JobAssignment`` (protocol ``agent.BuildAgentToken``).

    ``response`` is the worker's answer: identity, name, metadata and attributes to join with.
    """
    now = int(time.time())
    attributes = dict(response.participant_attributes)
    attributes[AGENT_NAME_ATTRIBUTE] = agent_name
    claims: dict[str, Any] = {
        "iss": api_key,
        "sub": response.participant_identity,
        "nbf": now,
        "exp": now + AGENT_TOKEN_TTL_SECONDS,
        "kind": "agent",
        "video": {
            "roomJoin": True,
            "agent": True,
            "room": room,
            "canSubscribe": permissions.can_subscribe,
            "canPublish": permissions.can_publish,
            "canPublishData": permissions.can_publish_data,
            "canUpdateOwnMetadata": permissions.can_update_metadata,
            "canSubscribeMetrics": permissions.can_subscribe_metrics,
            "hidden": permissions.hidden,
        },
        "attributes": attributes,
    }
    if response.participant_name:
        claims["name"] = response.participant_name
    if response.participant_metadata:
        claims["metadata"] = response.participant_metadata
    return jwt.encode(claims, api_secret, algorithm="HS256")
