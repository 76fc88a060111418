"""The plain core behind the session routes (:mod:`services.api.routes.sessions`): admit, mint, announce, and read
back a session. No HTTP and no Redis here: admission comes in through the :class:`SessionAdmission` port."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from opentelemetry.trace import SpanKind

from contracts.events import SessionRequested, utc_now
from contracts.providers import ProviderChoice
from contracts.status import SessionStatus
from services.api.admission import Admission
from services.api.client_tokens import ClientTokens
from services.api.credentials import AgentClaims, CredentialIssuer
from services.api.repository import Flow
from services.api.schemas import SessionCreated, SessionOut, SessionStages
from services.api.tokens import participant_token
from services.runtime import tracing


class OverCapacityError(Exception):
    """The organisation has too many sessions not yet terminal: answered with 429 and Retry-After."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IdempotencyConflictError(Exception):
    """An Idempotency-Key was reused for a different request: answered with 409 Conflict."""


class SessionAdmission(Protocol):
    """Admission, the one announcement of a session request, and where a just-requested session is found."""

    async def admit(self, request: SessionRequested, idem_key: str | None, record: str) -> Admission:
        """Replay a remembered request, or say the org is full, or take a slot, remember ``record`` and publish
        ``request``, all at once."""
        ...

    async def release(self, org_id: str, session_id: str) -> None:
        """Give a slot back."""
        ...

    async def announce(self, request: SessionRequested) -> None:
        """Publish the request again (a replay whose first attempt left no snapshot)."""
        ...

    async def snapshot(self, session_id: str) -> SessionRequested | None:
        """Return a recently requested session, or None."""
        ...


@dataclass(frozen=True)
class TokenIssuer:
    """Credentials and policy for participant tokens (``ttl_s``: watcher tokens; a user's lasts until its session's
    readiness deadline plus ``join_margin_s``, long enough to join, not to come back to an ended session)."""

    api_key: str
    api_secret: str
    ttl_s: int
    livekit_url: str
    join_margin_s: int = 30

    def user_ttl_s(self, request: SessionRequested) -> int:
        """Seconds a user's participant token of ``request`` stays valid for joining."""
        return math.ceil((request.ready_deadline - request.occurred_at).total_seconds()) + self.join_margin_s


@dataclass(frozen=True)
class SessionPolicy:
    """Defaults the hot path applies."""

    ready_timeout_s: float
    retry_after_s: int


@dataclass(frozen=True)
class SessionMinting:
    """What a new session's answer is minted with: participant tokens, the agent's credential, the defaults."""

    tokens: TokenIssuer
    credentials: CredentialIssuer
    policy: SessionPolicy
    client_tokens: ClientTokens


def ready_timeout_for(flow: Flow, default_s: float) -> float:
    """The flow's readiness timeout, else the default."""
    value = flow.agent_settings.get("readyTimeoutS")
    return float(value) if isinstance(value, int | float) and value > 0 else default_s


def max_duration_for(flow: Flow) -> float | None:
    """The flow's maximum session duration, or None (the session store's default applies)."""
    value = flow.agent_settings.get("maxDurationS")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def user_can_publish_data(flow: Flow) -> bool:
    """Whether the flow lets its users publish data (``userCanPublishData``; off unless set to true)."""
    return flow.agent_settings.get("userCanPublishData") is True


def new_request(flow: Flow, policy: SessionPolicy, credentials: CredentialIssuer) -> SessionRequested:
    """A fresh session request for ``flow``: ids, deadline and the agent's credential."""
    session_id = uuid.uuid4().hex
    now = utc_now()
    deadline = now + timedelta(seconds=ready_timeout_for(flow, policy.ready_timeout_s))
    credential = credentials.mint(AgentClaims(session_id, flow.id, flow.org_id), deadline)
    return SessionRequested(
        session_id=session_id,
        org_id=flow.org_id,
        flow_id=flow.id,
        room_name=f"session-{session_id}",
        greeting=flow.greeting,
        ready_deadline=deadline,
        occurred_at=now,
        agent_credential=credential,
        max_duration_s=max_duration_for(flow),
        providers=ProviderChoice.from_agent_settings(flow.agent_settings),
        traceparent=tracing.current_traceparent(),  # the session's trace starts here ("" when tracing is off)
    )


async def request_session(
    flow: Flow,
    idem_key: str | None,
    admission: SessionAdmission,
    minting: SessionMinting,
) -> SessionCreated:
    """Admit and announce a new session (or replay the one an Idempotency-Key already created), return at once.

    The session's trace starts in this span: ``session.requested`` carries its context to every consumer."""
    with tracing.span("session.request", kind=SpanKind.SERVER):
        created = await _admitted(flow, idem_key, admission, minting)
        if tracing.enabled():
            tracing.annotate(**{"agentready.session_id": created.session_id, "agentready.flow_id": flow.id})
        return created


async def _admitted(
    flow: Flow, idem_key: str | None, admission: SessionAdmission, minting: SessionMinting
) -> SessionCreated:
    request = new_request(flow, minting.policy, minting.credentials)
    issuer = minting.tokens
    token = participant_token(
        issuer.api_key,
        issuer.api_secret,
        room_name=request.room_name,
        identity=f"user-{request.session_id}",
        ttl_s=issuer.user_ttl_s(request),
        can_publish_data=user_can_publish_data(flow),
    )
    created = SessionCreated(
        session_id=request.session_id,
        room_name=request.room_name,
        token=token,
        livekit_url=issuer.livekit_url,
        ready_deadline=request.ready_deadline,
        client_token=minting.client_tokens.mint(request.session_id, flow.org_id, request.occurred_at),
    )
    record = (  # what a retry with the same Idempotency-Key gets back; without a key nothing is remembered
        json.dumps(
            {"flowId": flow.id, "response": created.model_dump(mode="json"), "request": request.model_dump(mode="json")}
        )
        if idem_key
        else ""
    )
    try:
        outcome = await admission.admit(request, idem_key, record)
    except Exception:
        await admission.release(flow.org_id, request.session_id)  # no slot kept for a request its client saw fail
        raise
    if outcome.outcome == "full":
        raise OverCapacityError(
            "too many sessions not yet ended for this organisation; retry later", minting.policy.retry_after_s
        )
    if outcome.outcome == "replay":
        assert outcome.record is not None
        return await _replay(flow, outcome.record, admission, minting.client_tokens)
    return created


async def _replay(flow: Flow, record: str, admission: SessionAdmission, client_tokens: ClientTokens) -> SessionCreated:
    """The remembered answer; announce it again if the first attempt never got that far (duplicates are harmless)."""
    stored: dict[str, Any] = json.loads(record)
    if stored["flowId"] != flow.id:
        raise IdempotencyConflictError("this Idempotency-Key was already used for another flow; use a new key")
    request = SessionRequested.model_validate(stored["request"])
    if await admission.snapshot(request.session_id) is None:
        await admission.announce(request)
    response: dict[str, Any] = stored["response"]
    if "client_token" not in response:  # remembered by a version from before client tokens
        response["client_token"] = client_tokens.mint(request.session_id, request.org_id)
    return SessionCreated.model_validate(response)


class SessionRows(Protocol):
    """Reads the session store's rows."""

    async def get_session(self, org_id: str, session_id: str) -> dict[str, Any] | None:
        """The organisation's session row, or None."""
        ...


async def find_session(
    org_id: str, session_id: str, rows: SessionRows, admission: SessionAdmission
) -> SessionOut | None:
    """The session as recorded, else as just requested (pending), else None; other organisations' are None."""
    row = await rows.get_session(org_id, session_id)
    if row is not None:
        return session_from_row(row)
    requested = await admission.snapshot(session_id)
    if requested is not None and requested.org_id == org_id:
        return session_from_request(requested)
    return None


async def session_exists_for(claims: AgentClaims, rows: SessionRows, admission: SessionAdmission) -> bool:
    """True when the session an agent credential speaks for exists: just requested, else recorded.

    The admission snapshot comes first (it matches the credential's organisation and flow): flow init then reads no
    session row in PostgreSQL, so an agent starts while PostgreSQL is unreachable. Only a session the snapshot no
    longer knows needs its row (an unreachable database raises: retryable, never "not found").
    """
    requested = await admission.snapshot(claims.session_id)
    if requested is not None and (requested.org_id, requested.flow_id) == (claims.org_id, claims.flow_id):
        return True
    return await rows.get_session(claims.org_id, claims.session_id) is not None


def session_from_row(row: dict[str, Any]) -> SessionOut:
    """The API view of a session row."""
    return SessionOut(
        session_id=row["id"],
        status=row["status"],
        reason=row["reason"],
        end_code=row.get("end_code"),
        flow_id=row["flow_id"],
        room_name=row["room_name"],
        ready_deadline=row["ready_deadline"],
        stages=stages_from_times(row),
    )


def stages_from_times(times: Mapping[str, Any]) -> SessionStages:
    """The API view of a session's stage times: a row's ``*_at`` columns, or a status change's ``stages``."""
    return SessionStages(
        requested=times.get("requested_at"),
        dispatched=times.get("dispatched_at"),
        agent_joined=times.get("agent_joined_at"),
        listener_subscribed=times.get("listener_subscribed_at"),
        greeting_started=times.get("greeting_started_at"),
        greeting_finished=times.get("greeting_finished_at"),
        ready=times.get("ready_at"),
        ended=times.get("ended_at"),
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
