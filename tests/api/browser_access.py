"""Helpers of the browser-access tests: an organisation of their own, its flows and its keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from services.api.admin import KeyRequest, create_key
from services.api.scopes import ALL_SCOPES
from tests.api.conftest import http_client, new_flow

PAGE_ORIGIN = "https://shop.example"


@dataclass(frozen=True)
class Org:
    """A fresh organisation: its name and a secret key with every scope."""

    name: str
    secret_key: str


async def new_org(database_url: str, scopes: Sequence[str] = ALL_SCOPES) -> Org:
    """A fresh organisation with a secret key of ``scopes``."""
    name = f"browser-{uuid.uuid4().hex[:8]}"
    key, _org = await create_key(database_url, name, request=KeyRequest(scopes=scopes))
    return Org(name, key)


async def org_flow(app: FastAPI, org: Org) -> str:
    """A new flow of ``org``."""
    async with http_client(app, org.secret_key) as client:
        return await new_flow(client)


async def publishable_key(
    database_url: str, org: Org, flow_ids: Sequence[str], origins: Sequence[str] = (PAGE_ORIGIN,)
) -> str:
    """A new publishable key of ``org`` for ``flow_ids`` from ``origins``."""
    key, _org = await create_key(
        database_url, org.name, request=KeyRequest(publishable=True, flow_ids=flow_ids, origins=origins)
    )
    return key


def browser(
    app: FastAPI, key: str | None, origin: str = PAGE_ORIGIN, address: str = "203.0.113.7"
) -> httpx.AsyncClient:
    """A client that sends ``key`` and the ``Origin`` of a page, from client ``address``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 50000))
    headers = {"Origin": origin, **({"Authorization": f"Bearer {key}"} if key else {})}
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers)
