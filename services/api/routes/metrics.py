"""``GET /metrics``: this replica's Prometheus metrics, without authentication (keep it off the public ingress).

It names no organisation, key or session: counts, latencies and the process' own numbers only.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """The default registry in Prometheus' text format (a sync route: Starlette runs it in its thread pool)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
