"""``/api/webhooks``: an organisation's lifecycle webhook endpoints, their delivery log and replays.

The webhook sender (``services/webhooks``) does the sending; these routes only read and write its tables.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from services.api.access import ApiKeyDep
from services.api.dependencies import SettingsDep
from services.api.errors import NotFoundError
from services.api.params import WebhookDeliveryId, WebhookEndpointId
from services.api.schemas import ErrorBody
from services.api.scopes import WEBHOOKS
from services.api.webhook_schemas import (
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookReplayed,
    WebhookSecretRotate,
    WebhookSecretRotated,
)
from services.api.webhook_store import Endpoint, WebhookStore
from services.api.webhook_urls import WebhookUrlError, checked_webhook_url

router = APIRouter(
    prefix="/api/webhooks",
    tags=["webhooks"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)


async def get_webhooks_org(key: ApiKeyDep) -> str:
    """The organisation of a secret key with the ``webhooks`` scope."""
    return key.require(WEBHOOKS)


async def get_store(request: Request) -> WebhookStore:
    """The webhook tables' SQL."""
    store: WebhookStore = request.app.state.webhook_store
    return store


OrgDep = Annotated[str, Depends(get_webhooks_org)]
NO_ROTATE_BODY = WebhookSecretRotate()  # a rotation without a body keeps the old secret for the default overlap
StoreDep = Annotated[WebhookStore, Depends(get_store)]


def _out(endpoint: Endpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        created_at=endpoint.created_at,
    )


async def _endpoint(store: WebhookStore, org_id: str, endpoint_id: str) -> Endpoint:
    endpoint = await store.get(org_id, endpoint_id)
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id!r} not found")
    return endpoint


@router.post("", status_code=201, response_model=WebhookEndpointCreated, responses={422: {"model": ErrorBody}})
async def create_endpoint(
    body: WebhookEndpointCreate, org_id: OrgDep, store: StoreDep, settings: SettingsDep
) -> WebhookEndpointCreated:
    """Register an endpoint; the answer holds its signing secret, shown only this once."""
    try:
        url = await checked_webhook_url(body.url, dev_mode=settings.dev_mode)
    except WebhookUrlError as exc:
        raise RequestValidationError([{"loc": ("body", "url"), "msg": str(exc), "type": "value_error"}]) from None
    events = sorted(set(body.events), key=body.events.index)
    endpoint, secret = await store.create(org_id, url, list(events), body.description)
    return WebhookEndpointCreated(**_out(endpoint).model_dump(), secret=secret)


@router.get("", response_model=WebhookEndpointList)
async def list_endpoints(org_id: OrgDep, store: StoreDep) -> WebhookEndpointList:
    """The organisation's endpoints, oldest first (without their secrets)."""
    return WebhookEndpointList(endpoints=[_out(e) for e in await store.endpoints(org_id)])


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut, responses={404: {"model": ErrorBody}})
async def get_endpoint(endpoint_id: WebhookEndpointId, org_id: OrgDep, store: StoreDep) -> WebhookEndpointOut:
    """One endpoint."""
    return _out(await _endpoint(store, org_id, endpoint_id))


@router.delete("/{endpoint_id}", status_code=204, responses={404: {"model": ErrorBody}})
async def delete_endpoint(endpoint_id: WebhookEndpointId, org_id: OrgDep, store: StoreDep) -> Response:
    """Remove an endpoint and its delivery log; nothing more is sent to it."""
    if not await store.delete(org_id, endpoint_id):
        raise NotFoundError(f"webhook endpoint {endpoint_id!r} not found")
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookSecretRotated,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def rotate_secret(
    endpoint_id: WebhookEndpointId, org_id: OrgDep, store: StoreDep, body: WebhookSecretRotate = NO_ROTATE_BODY
) -> WebhookSecretRotated:
    """Give the endpoint a new signing secret, shown only this once. The old one keeps signing beside it (two
    signatures in ``webhook-signature``) for ``previousSecretValidForS``, time to move receivers over."""
    rotated = await store.rotate_secret(org_id, endpoint_id, body.previous_secret_valid_for_s)
    if rotated is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id!r} not found")
    endpoint, secret, expires_at = rotated
    return WebhookSecretRotated(**_out(endpoint).model_dump(), secret=secret, previous_secret_expires_at=expires_at)


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryList, responses={404: {"model": ErrorBody}})
async def list_deliveries(
    endpoint_id: WebhookEndpointId,
    org_id: OrgDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
) -> WebhookDeliveryList:
    """The endpoint's last ``limit`` deliveries, newest first: status, attempts, last answer or error, times."""
    await _endpoint(store, org_id, endpoint_id)
    rows = await store.deliveries(org_id, endpoint_id, limit, status)
    return WebhookDeliveryList(deliveries=[WebhookDeliveryOut(**row) for row in rows])


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=WebhookReplayed,
    responses={404: {"model": ErrorBody}},
)
async def replay_delivery(
    endpoint_id: WebhookEndpointId, delivery_id: WebhookDeliveryId, org_id: OrgDep, store: StoreDep
) -> WebhookReplayed:
    """Send one delivery again, with the same ``webhook-id`` and a fresh set of attempts."""
    if not await store.replay_one(org_id, endpoint_id, delivery_id):
        raise NotFoundError(f"delivery {delivery_id!r} of webhook endpoint {endpoint_id!r} not found")
    return WebhookReplayed(replayed=1)


@router.post(
    "/{endpoint_id}/replay", status_code=202, response_model=WebhookReplayed, responses={404: {"model": ErrorBody}}
)
async def replay_dead(endpoint_id: WebhookEndpointId, org_id: OrgDep, store: StoreDep) -> WebhookReplayed:
    """Send every dead delivery of the endpoint again (each with its own ``webhook-id``)."""
    await _endpoint(store, org_id, endpoint_id)
    return WebhookReplayed(replayed=await store.replay_dead(org_id, endpoint_id))
