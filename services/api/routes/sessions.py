"""Session endpoints (HTTP only): request one (answers at once), read its status, end it.

The rules behind them are in :mod:`services.api.session_core`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.routing import APIRoute

from contracts.events import SessionEndRequested
from contracts.status import TERMINAL, SessionStatus
from services.api.access import ApiKeyDep, SessionOrgDep
from services.api.cached_flows import CachedFlows
from services.api.dependencies import AdmissionDep, FlowsDep, MintingDep, PublisherDep, RepoDep
from services.api.errors import NotFoundError
from services.api.params import FlowId, SessionId
from services.api.publishable_keys import PublishableGate
from services.api.repository import Flow
from services.api.routes.flows import require_usable
from services.api.schemas import ErrorBody, SessionCreated, SessionOut
from services.api.scopes import SESSIONS
from services.api.session_core import find_session, request_session

router = APIRouter(
    tags=["sessions"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}}
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a retried request with the same key returns the same session",
    ),
]

_CREATE_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody},
    409: {
        "model": ErrorBody,
        "description": "the Idempotency-Key was used for another request, or the flow's stored definition is unusable",
    },
    422: {"model": ErrorBody},
    429: {"model": ErrorBody, "description": "too many open sessions, or a publishable key's rate; see Retry-After"},
    503: {"model": ErrorBody},
}


async def _flow(flows: CachedFlows, org_id: str, flow_id: str) -> Flow:
    """The flow a session is requested for (404 when there is none)."""
    flow = await flows.get(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found; create it with POST /api/flows")
    return require_usable(flow)


async def create_session(
    flow_id: FlowId,
    request: Request,
    key: ApiKeyDep,
    flows: FlowsDep,
    admission: AdmissionDep,
    minting: MintingDep,
    idempotency_key: IdempotencyKey = None,
) -> SessionCreated:
    """Request an agent session: returns the room, a token and the session's clientToken at once; readiness comes
    later. A publishable key (``pk_``) works here only: for its flows, from its origins, at a bounded rate."""
    if key.publishable:  # the gate is read here, not as a dependency: a secret key's request (the hot path) skips it
        gate: PublishableGate = request.app.state.publishable
        address = request.client.host if request.client else "unknown"
        await gate.admit(key, flow_id, request.headers.get("origin"), address)
        org_id = key.org_id
        if idempotency_key:  # browsers share the key: one never gets another's session (and its clientToken) back
            idempotency_key = f"pk:{key.key_id}:{address}:{idempotency_key}"
    else:
        org_id = key.require(SESSIONS)
    flow = await _flow(flows, org_id, flow_id)
    return await request_session(flow, idempotency_key, admission, minting)


def add_create_route(app: FastAPI) -> APIRoute:
    """Add ``POST /api/flows/{flow_id}/sessions`` to the app itself, as :data:`router`'s first route would be: matched
    first (plainly valid requests are served by :mod:`services.api.hot_lane` before any route)."""
    app.router.add_api_route(
        "/api/flows/{flow_id}/sessions",
        create_session,
        methods=["POST"],
        status_code=202,
        response_model=SessionCreated,
        responses={**router.responses, **_CREATE_RESPONSES},
        tags=list(router.tags),
    )
    route = app.router.routes[-1]
    assert isinstance(route, APIRoute)
    return route


@router.post(
    "/api/flows/{flow_id}/test-audio", status_code=202, response_model=SessionCreated, responses=_CREATE_RESPONSES
)
async def create_test_audio_session(
    flow_id: FlowId,
    key: ApiKeyDep,
    flows: FlowsDep,
    admission: AdmissionDep,
    minting: MintingDep,
    idempotency_key: IdempotencyKey = None,
) -> SessionCreated:
    """Alias of ``POST /api/flows/{flow_id}/sessions`` (the route existing frontends call); secret keys only."""
    flow = await _flow(flows, key.require(SESSIONS), flow_id)
    return await request_session(flow, idempotency_key, admission, minting)


@router.get("/api/sessions/{session_id}", response_model=SessionOut, responses={404: {"model": ErrorBody}})
@router.head("/api/sessions/{session_id}", include_in_schema=False)
async def get_session(
    session_id: SessionId, org_id: SessionOrgDep, repo: RepoDep, admission: AdmissionDep
) -> SessionOut:
    """Return a session's status and the time each stage was reached."""
    session = await find_session(org_id, session_id, repo, admission)
    if session is None:
        raise NotFoundError(f"session {session_id!r} not found")
    return session


@router.delete(
    "/api/sessions/{session_id}", status_code=202, response_model=SessionOut, responses={404: {"model": ErrorBody}}
)
async def end_session(
    session_id: SessionId, org_id: SessionOrgDep, repo: RepoDep, admission: AdmissionDep, publisher: PublisherDep
) -> SessionOut:
    """End a session: answers at once; the status becomes ``ended`` and the room is cleaned up asynchronously."""
    session = await find_session(org_id, session_id, repo, admission)
    if session is None:
        raise NotFoundError(f"session {session_id!r} not found")
    if SessionStatus(session.status) not in TERMINAL:
        await publisher.publish(SessionEndRequested(session_id=session_id, reason="ended by request"))
    return session
