"""Liveness and readiness probes.

Ready means the API can do its core job, accepting sessions: admission and the announcement live in Redis, so
Redis must answer. PostgreSQL unreachable still leaves it ready (flows and keys read before are served from the
caches, see ``TtlCache``), reported as ``degraded`` so operators see it; taking every replica out of service
then would refuse the sessions the caches can still accept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.dependencies import RedisDep, RepoDep, SettingsDep

router = APIRouter(tags=["health"])

log = structlog.get_logger(__name__)

OK = "ok"


async def check(name: str, probe: Awaitable[object], timeout_s: float) -> str:
    """``ok`` when ``probe`` finishes within ``timeout_s``, else why not (never raises: a probe must not hang)."""
    try:
        async with asyncio.timeout(timeout_s):
            await probe
    except TimeoutError:
        problem = f"no answer within {timeout_s:g}s"
    except Exception as exc:  # noqa: BLE001 -- any failure is the check's answer
        log.warning("readiness_check_failed", check=name, error=f"{type(exc).__name__}: {exc}"[:500])
        problem = type(exc).__name__  # not the message: it may name hosts, and /readyz is unauthenticated
    else:
        return OK
    return f"unreachable: {problem}"


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)  # probes and load balancers often send HEAD
async def healthz() -> dict[str, str]:
    """Liveness: the process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
@router.head("/readyz", include_in_schema=False)
async def readyz(settings: SettingsDep, redis_client: RedisDep, repo: RepoDep) -> JSONResponse:
    """Readiness: 200 when Redis answers (``degraded`` if PostgreSQL does not), else 503."""
    timeout_s = settings.probe_timeout_s
    redis, postgres = await asyncio.gather(
        check("redis", redis_client.ping(), timeout_s),
        check("postgres", repo.ping(), timeout_s),
    )
    checks = {"redis": redis, "postgres": postgres}
    if redis != OK:
        return JSONResponse({"status": "not ready", "checks": checks}, 503)
    return JSONResponse({"status": "ready" if postgres == OK else "degraded", "checks": checks}, 200)
