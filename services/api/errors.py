"""Errors at the HTTP edge: a 4xx with a JSON body a person can act on, never a stack trace."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.api.auth import AuthError
from services.api.credentials import CredentialError
from services.api.metrics import ADMISSION_REFUSALS
from services.api.publishable_keys import RateLimitedError
from services.api.schemas import ErrorBody
from services.api.scopes import AccessDeniedError
from services.api.session_core import IdempotencyConflictError, OverCapacityError

log = structlog.get_logger(__name__)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    "4XX": {"model": ErrorBody, "description": "the request cannot be served as sent; `error` says why"},
    "5XX": {"model": ErrorBody, "description": "the server failed, or a dependency is unavailable (503: retry)"},
}
"""The error answers of every route, for the OpenAPI document: the body :func:`install_error_handlers` returns."""


class NotFoundError(Exception):
    """The thing asked for does not exist (or belongs to another organisation)."""


def _body(error: str, detail: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {"error": error, "detail": detail} if detail else {"error": error}


def _describe(errors: list[dict[str, object]]) -> tuple[str, list[dict[str, object]]]:
    detail: list[dict[str, object]] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]  # type: ignore[attr-defined]
        item = {"field": ".".join(loc) or "body", "problem": err.get("msg", "invalid")}
        if item not in detail:  # a path parameter checked by a route and by its dependency is one problem
            detail.append(item)
    if any(err.get("type") == "json_invalid" for err in errors):
        return "malformed JSON body: send a valid JSON object", detail
    return "invalid request: " + "; ".join(f"{d['field']}: {d['problem']}" for d in detail), detail


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route of the request's path answers to (Starlette's 405 names only the first route's)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )


_FASTAPI_UNPARSABLE = "There was an error parsing the body"


def _unparsable(exc: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse a JSON body that is valid JSON text (its own message names no reason)."""
    cause = exc.__cause__
    if exc.detail != _FASTAPI_UNPARSABLE or cause is None:  # only FastAPI's own answer: others say why already
        return None
    if isinstance(cause, RecursionError):
        return "malformed JSON body: it is nested too deeply to parse; send a flatter JSON object"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "malformed JSON body: a number has too many digits; send it as a string"
    return f"malformed JSON body: {type(cause).__name__}"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that shape every error answer."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        error, detail = _describe(list(exc.errors()))
        status = 400 if error.startswith("malformed") else 422
        return JSONResponse(_body(error, detail), status_code=status)

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=404)

    @app.exception_handler(AuthError)
    async def unauthorised(_: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(CredentialError)
    async def forbidden(_: Request, exc: CredentialError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=403)

    @app.exception_handler(AccessDeniedError)
    async def access_denied(_: Request, exc: AccessDeniedError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=403)

    @app.exception_handler(RateLimitedError)
    async def rate_limited(_: Request, exc: RateLimitedError) -> JSONResponse:
        ADMISSION_REFUSALS.labels("publishable_rate").inc()
        return JSONResponse(_body(str(exc)), status_code=429, headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(OverCapacityError)
    async def over_capacity(_: Request, exc: OverCapacityError) -> JSONResponse:
        ADMISSION_REFUSALS.labels("org_capacity").inc()
        return JSONResponse(_body(str(exc)), status_code=429, headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(IdempotencyConflictError)
    async def idempotency_conflict(_: Request, exc: IdempotencyConflictError) -> JSONResponse:
        return JSONResponse(_body(str(exc)), status_code=409)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(_body(_unparsable(exc) or str(exc.detail)), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RedisError)
    async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
        log.error("redis_unavailable", error=str(exc))
        return JSONResponse(_body("the message broker is unavailable; retry shortly"), 503, {"Retry-After": "1"})

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("database_unavailable", error=str(exc))
        return JSONResponse(_body("the database is unavailable; retry shortly"), 503, {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(_body("internal error; it has been logged"), status_code=500)
