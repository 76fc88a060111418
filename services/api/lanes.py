"""Lanes: requests the API serves in front of Starlette's middleware stack and router, because they are its hot paths
(docs/performance.md, "The hot lane"). A lane takes only plainly valid requests; everything else, and every other
route, goes through FastAPI. What the stack would have done for a request a lane takes, the lane does too: every error
gets the app's exception handler's answer, and ``Vary: Origin`` is added as the CORS middleware adds it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from fastapi import FastAPI, Request
from starlette._exception_handler import _lookup_exception_handler  # the lookup Starlette's own middleware does
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_JSON = (b"content-type", b"application/json")
_VARY_ORIGIN = (b"vary", b"Origin")
Handler = Callable[[Request, Exception], Any]


class Lane(Protocol):
    """Serves some requests in front of the middleware stack."""

    def takes(self, scope: Scope) -> tuple[Any, ...] | None:
        """What :meth:`serve` needs when this lane serves the request; None when FastAPI should."""

    async def serve(self, scope: Scope, receive: Receive, send: Send, args: tuple[Any, ...]) -> None:
        """Answer a request :meth:`takes` accepted."""


def plain_post(app: FastAPI, scope: Scope) -> bool:
    """A POST a lane may take: HTTP, no root path (the router's matching), no dependency override (tests compare a
    lane with FastAPI's handler that way)."""
    return (
        scope["type"] == "http"
        and scope["method"] == "POST"
        and not scope.get("root_path")
        and not app.dependency_overrides
    )


async def answer(
    app: FastAPI,
    scope: Scope,
    receive: Receive,
    send: Send,
    vary_origin: bool,
    status: int,
    work: Callable[[Request], Awaitable[bytes]],
) -> None:
    """Run ``work`` (the route's own, on the request; its JSON answer's body) and answer ``status`` with what it
    returned, or the app's answer to what it raised (nothing was sent yet)."""
    scope["app"] = app
    request = Request(scope, receive, send)
    try:
        body = await work(request)
    except Exception as exc:  # noqa: BLE001 - every error gets the app's answer
        await _answer_error(app, request, exc, send, vary_origin)
        return
    await _send_json(send, status, body, vary_origin)


async def _send_json(send: Send, status: int, body: bytes, vary_origin: bool) -> None:
    """A JSON answer, as the route's response would be (``Vary: Origin`` when CORS is on)."""
    headers = [(b"content-length", str(len(body)).encode()), _JSON]
    if vary_origin:
        headers.append(_VARY_ORIGIN)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_error(app: FastAPI, request: Request, exc: Exception, send: Send, vary_origin: bool) -> None:
    """The app's answer to ``exc``, as its middleware would give it; nothing was sent yet. An unexpected error is
    re-raised after its 500, as Starlette's ``ServerErrorMiddleware`` does, so uvicorn logs it."""
    handler, unexpected = _handler(app, exc)
    if handler is None:
        raise exc
    answer = handler(request, exc)
    response: Response = await answer if inspect.isawaitable(answer) else answer
    if vary_origin and not unexpected:  # the 500 is answered outside the CORS middleware, without it
        response.headers.add_vary_header("Origin")
    await response(request.scope, request.receive, send)
    if unexpected:
        raise exc


def _handler(app: FastAPI, exc: Exception) -> tuple[Handler | None, bool]:
    """The app's handler for ``exc`` as Starlette picks it, and whether it is the 500 one (nothing else fits)."""
    handlers: dict[Any, Handler] = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code], False
    # Starlette's ExceptionMiddleware has every handler but the 500 one; its ServerErrorMiddleware has that one
    found = _lookup_exception_handler({k: v for k, v in handlers.items() if k not in (500, Exception)}, exc)
    if found is not None:
        return cast("Handler", found), False
    return handlers.get(500) or handlers.get(Exception), True
