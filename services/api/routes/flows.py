"""``/api/flows``: the flows agents run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from services.api.access import FlowsOrgDep
from services.api.dependencies import FlowsDep, RepoDep
from services.api.errors import NotFoundError
from services.api.params import FlowId
from services.api.repository import Flow
from services.api.schemas import ErrorBody, FlowAgentSettings, FlowCreate, FlowList, FlowOut, FlowUpdate

router = APIRouter(
    prefix="/api/flows",
    tags=["flows"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)


def flow_out(flow: Flow) -> FlowOut:
    """The API view of a flow."""
    return FlowOut(
        id=flow.id,
        name=flow.name,
        greeting=flow.greeting,
        definition=flow.definition,
        definition_error=_definition_error(flow),
        agent_settings=FlowAgentSettings.model_validate(flow.agent_settings),
        created_at=flow.created_at,
        updated_at=flow.updated_at,
    )


def _definition_error(flow: Flow) -> str | None:
    if flow.definition_problem is None:
        return None
    return f"the stored definition {flow.definition_problem}; replace it with PATCH /api/flows/{flow.id}"


def require_usable(flow: Flow) -> Flow:
    """``flow`` when its stored definition can be served, else 409 saying how to repair it."""
    problem = _definition_error(flow)
    if problem is not None:
        raise HTTPException(409, f"flow {flow.id!r} cannot be used: {problem}")
    return flow


def _settings_json(settings: FlowAgentSettings) -> dict[str, Any]:
    return settings.model_dump(by_alias=True, exclude_none=True)


@router.post("", status_code=201, response_model=FlowOut, responses={422: {"model": ErrorBody}})
async def create_flow(body: FlowCreate, org_id: FlowsOrgDep, repo: RepoDep) -> FlowOut:
    """Create a flow: a name, the greeting the agent speaks, a free-form definition and agent settings."""
    flow = await repo.create_flow(
        org_id, body.name, body.greeting, body.definition, _settings_json(body.agent_settings)
    )
    return flow_out(flow)


@router.get("", response_model=FlowList)
@router.head("", include_in_schema=False)
async def list_flows(org_id: FlowsOrgDep, repo: RepoDep, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> FlowList:
    """The organisation's flows, oldest first."""
    return FlowList(flows=[flow_out(f) for f in await repo.list_flows(org_id, limit)])


@router.get("/{flow_id}", response_model=FlowOut, responses={404: {"model": ErrorBody}})
@router.head("/{flow_id}", include_in_schema=False)
async def get_flow(flow_id: FlowId, org_id: FlowsOrgDep, repo: RepoDep) -> FlowOut:
    """Return one flow."""
    flow = await repo.get_flow(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found")
    return flow_out(flow)


@router.patch("/{flow_id}", response_model=FlowOut, responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def update_flow(
    flow_id: FlowId, body: FlowUpdate, org_id: FlowsOrgDep, repo: RepoDep, flows: FlowsDep
) -> FlowOut:
    """Change some of a flow's fields; fields not given keep their value (agentSettings is replaced whole)."""
    changes: dict[str, Any] = {
        column: value
        for column, value in (("name", body.name), ("greeting", body.greeting), ("definition", body.definition))
        if value is not None
    }
    if body.agent_settings is not None:
        changes["agent_settings"] = _settings_json(body.agent_settings)
    flow = await repo.update_flow(org_id, flow_id, changes) if changes else await repo.get_flow(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found")
    flows.forget(org_id, flow_id)
    return flow_out(flow)
