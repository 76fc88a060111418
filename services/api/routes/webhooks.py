"""``POST /api/livekit/webhook``: LiveKit's signed webhooks, turned into events the session store applies.

Verified exactly as the LiveKit SDKs do (``WebhookReceiver(TokenVerifier(key, secret)).receive``): the
``Authorization`` header holds a JWT signed with the API secret whose ``sha256`` claim is the body's hash. A forged,
unsigned or stale webhook gets 401 and changes nothing. The API never writes a session's status: it publishes.

- ``room_finished`` -> ``session.end_requested`` (code ``room_closed``)
- ``participant_joined`` / ``participant_left`` of the user (not an agent, not a watcher) ->
  ``session.user_presence_changed`` (the session store ends the session if the user stays away)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, HTTPException, Request
from google.protobuf.json_format import ParseError
from livekit import api
from livekit.protocol import models, webhook
from pydantic import BaseModel, ValidationError

from contracts.endings import EndCode, sentence
from contracts.events import Event, SessionEndRequested, UserPresenceChanged
from contracts.flow_events import is_watcher
from contracts.routes import LIVEKIT_WEBHOOK_PATH
from services.api.dependencies import PublisherDep, SettingsDep
from services.api.schemas import ErrorBody
from services.api.settings import ApiSettings
from services.runtime.publishing import EventPublisher

log = structlog.get_logger(__name__)

router = APIRouter(tags=["livekit"])

ROOM_PREFIX = "session-"  # the API names each session's room ``session-<session id>``
# Who can be "the user": people, phone calls and connectors; never agents, egress or ingress.
USER_KINDS = frozenset({models.ParticipantInfo.STANDARD, models.ParticipantInfo.SIP, models.ParticipantInfo.CONNECTOR})


class WebhookAck(BaseModel):
    """What the API did with a verified webhook: the events it published, or why it ignored it."""

    event: str
    published: list[str]
    ignored: str | None = None


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else datetime.now(UTC)


def _user_presence(received: webhook.WebhookEvent, session_id: str) -> UserPresenceChanged | None:
    """The user's arrival or departure, or None for agents, watchers and other participants."""
    who = received.participant
    if who.kind not in USER_KINDS or is_watcher(dict(who.attributes)):
        return None
    present = received.event == "participant_joined"
    joined = _at(0) if who.joined_at_ms <= 0 else datetime.fromtimestamp(who.joined_at_ms / 1000, UTC)
    # created_at has whole seconds: a departure is never dated before the arrival of the connection that left.
    at = joined if present else max(_at(received.created_at), joined)
    return UserPresenceChanged(
        session_id=session_id,
        room_name=received.room.name,
        identity=who.identity,
        participant_sid=who.sid,
        present=present,
        source="livekit",
        occurred_at=at,
    )


def events_for(received: webhook.WebhookEvent) -> tuple[list[Event], str | None]:
    """The events a webhook stands for, or none and why it is ignored."""
    room_name = received.room.name
    if not room_name.startswith(ROOM_PREFIX):
        return [], f"room {room_name!r} is not a session's room"
    session_id = room_name.removeprefix(ROOM_PREFIX)
    try:
        if received.event == "room_finished":
            reason = sentence(EndCode.ROOM_CLOSED, "LiveKit closed the room")
            return [SessionEndRequested(session_id=session_id, code=EndCode.ROOM_CLOSED, reason=reason)], None
        if received.event in ("participant_joined", "participant_left"):
            presence = _user_presence(received, session_id)
            return ([presence], None) if presence else ([], "not the session's user")
    except ValidationError:
        return [], f"room {room_name!r} does not name a valid session id"
    return [], f"event {received.event!r} is not used"


def verify(body: bytes, authorization: str | None, key: str, secret: str) -> webhook.WebhookEvent:
    """The webhook, if its signature and body hash are right (401 if not, 400 if its body is not a webhook)."""
    if not authorization:
        raise HTTPException(401, "missing Authorization: LiveKit signs every webhook with the API key's secret")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "the webhook body must be UTF-8 JSON") from exc
    try:
        received = api.WebhookReceiver(api.TokenVerifier(key, secret)).receive(text, token)
    except ParseError as exc:
        raise HTTPException(400, f"the webhook body is not a LiveKit WebhookEvent: {exc}") from exc
    except Exception as exc:
        log.warning("webhook_refused", error=f"{type(exc).__name__}: {exc}")
        raise HTTPException(401, "webhook signature invalid or expired (check LIVEKIT_API_KEY/SECRET)") from exc
    if not received.event:
        raise HTTPException(400, "the webhook body is not a LiveKit WebhookEvent: it names no event")
    return received


@router.post(
    LIVEKIT_WEBHOOK_PATH,
    response_model=WebhookAck,
    responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}},
)
async def livekit_webhook(
    request: Request,
    settings: SettingsDep,
    publisher: PublisherDep,
    authorization: Annotated[str | None, Header(description="the JWT LiveKit signed the body with")] = None,
) -> WebhookAck:
    """Receive one LiveKit webhook: verify it, then publish what it means for the session."""
    return await acknowledge(await request.body(), authorization, settings, publisher)


async def acknowledge(
    body: bytes, authorization: str | None, settings: ApiSettings, publisher: EventPublisher
) -> WebhookAck:
    """Verify the webhook, publish its events, say what was done (the route's work, also the webhook lane's)."""
    received = verify(body, authorization, settings.livekit_api_key, settings.livekit_api_secret)
    events, ignored = events_for(received)
    for event in events:
        await publisher.publish(event)
    log.info("webhook", webhook_event=received.event, room=received.room.name, published=len(events), ignored=ignored)
    return WebhookAck(event=received.event, published=[str(getattr(e, "type", "")) for e in events], ignored=ignored)
