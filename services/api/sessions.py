"""Plain core of the session endpoints: mint, announce, and read back a session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from contracts.events import SessionRequested, utc_now
from contracts.status import SessionStatus
from services.api.repository import Flow
from services.api.schemas import SessionCreated, SessionOut, SessionStages
from services.api.tokens import participant_token


class SessionOutbox(Protocol):
    """Where a session request goes (one write), and where a just-requested session is found."""

    async def announce(self, request: SessionRequested) -> None:
        """Publish the request."""
        ...

    async def snapshot(self, session_id: str) -> SessionRequested | None:
        """Return a recently requested session, or None."""
        ...


@dataclass(frozen=True)
class TokenIssuer:
    """Credentials and policy for participant tokens."""

    api_key: str
    api_secret: str
    ttl_s: int
    livekit_url: str


async def request_session(
    flow: Flow, outbox: SessionOutbox, issuer: TokenIssuer, ready_timeout_s: float
) -> SessionCreated:
    """Create a session id, room name and token, announce the request, and return at once."""
    session_id = uuid.uuid4().hex
    room_name = f"session-{session_id}"
    now = utc_now()
    request = SessionRequested(
        session_id=session_id,
        org_id=flow.org_id,
        flow_id=flow.id,
        room_name=room_name,
        greeting=flow.greeting,
        ready_deadline=now + timedelta(seconds=ready_timeout_s),
        occurred_at=now,
    )
    token = participant_token(
        issuer.api_key, issuer.api_secret, room_name=room_name, identity=f"user-{session_id}", ttl_s=issuer.ttl_s
    )
    await outbox.announce(request)
    return SessionCreated(
        session_id=session_id,
        room_name=room_name,
        token=token,
        livekit_url=issuer.livekit_url,
        ready_deadline=request.ready_deadline,
    )


def session_from_row(row: dict[str, Any]) -> SessionOut:
    """The API view of a session row."""
    return SessionOut(
        session_id=row["id"],
        status=row["status"],
        reason=row["reason"],
        flow_id=row["flow_id"],
        room_name=row["room_name"],
        ready_deadline=row["ready_deadline"],
        stages=SessionStages(
            requested=row["requested_at"],
            dispatched=row["dispatched_at"],
            agent_joined=row["agent_joined_at"],
            ready=row["ready_at"],
            ended=row["ended_at"],
        ),
    )


def session_from_request(request: SessionRequested) -> SessionOut:
    """The API view of a session the session store has not recorded yet: it is pending."""
    return SessionOut(
        session_id=request.session_id,
        status=SessionStatus.PENDING.value,
        flow_id=request.flow_id,
        room_name=request.room_name,
        ready_deadline=request.ready_deadline,
        stages=SessionStages(requested=request.occurred_at),
    )
