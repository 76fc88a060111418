"""``/api/flows``: the flows agents run."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.dependencies import OrgDep, ResourcesDep
from services.api.errors import NotFoundError
from services.api.repository import Flow
from services.api.schemas import ErrorBody, FlowCreate, FlowOut

router = APIRouter(prefix="/api/flows", tags=["flows"])


def _out(flow: Flow) -> FlowOut:
    return FlowOut(id=flow.id, name=flow.name, greeting=flow.greeting, created_at=flow.created_at)


@router.post("", status_code=201, response_model=FlowOut, response_model_by_alias=True)
async def create_flow(body: FlowCreate, resources: ResourcesDep, org_id: OrgDep) -> FlowOut:
    """Create a flow with a name and the greeting the agent speaks."""
    return _out(await resources.repo.create_flow(org_id, body.name, body.greeting))


@router.get("/{flow_id}", response_model=FlowOut, responses={404: {"model": ErrorBody}})
async def get_flow(flow_id: str, resources: ResourcesDep, org_id: OrgDep) -> FlowOut:
    """Return one flow."""
    flow = await resources.repo.get_flow(org_id, flow_id)
    if flow is None:
        raise NotFoundError(f"flow {flow_id!r} not found")
    return _out(flow)
