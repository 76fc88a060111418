"""The session POST's hot lane: a plainly valid ``POST /api/flows/{flow_id}/sessions`` is served in one frame,
without Starlette's middleware stack and router; every other request goes through FastAPI as before.

Why (docs/performance.md): that stack cost ~60 µs of the API's ~380 µs of CPU per session POST, for work this request
does not need: its body limit (the request has no body), CORS (it has no Origin: a backend's call), FastAPI's exit
stack and dependency solving (the route has no dependency of its own), the router's matching. The lane keeps what the
request does need: the same route function (:func:`services.api.routes.sessions.create_session`), the same checks of
what the client sent, the app's exception handlers for every error (an unexpected one is also re-raised after its
500, as Starlette's ``ServerErrorMiddleware`` does, so uvicorn logs it), and ``Vary: Origin`` when CORS is on.

Plainly valid: a POST to the route's path (no root path) whose flow id and at most one ``Idempotency-Key`` pass the
declared parameters' rules, without Origin, without a body, and with no dependency override (tests compare the lane
with FastAPI's handler that way). Anything else gets FastAPI's own answer (405, 413, 422, CORS...).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler  # the lookup Starlette's own middleware does
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from services.api.access import get_api_key
from services.api.params import ID_MAX
from services.api.routes.sessions import create_session

if TYPE_CHECKING:
    from starlette.responses import Response

_PLAIN_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{ID_MAX}}}")  # params.FlowId's rule
_PLAIN_IDEMPOTENCY_KEY = re.compile(rb"[\x21-\x7e]{1,200}")  # sessions.IdempotencyKey's rule
_JSON = (b"content-type", b"application/json")
_VARY_ORIGIN = (b"vary", b"Origin")


class HotLane:
    """Serves ``route`` (the session POST) for plainly valid requests; :meth:`takes` says which."""

    def __init__(self, app: FastAPI, route: APIRoute, vary_origin: bool) -> None:
        self.app = app
        self.route = route
        self.vary_origin = vary_origin  # CORS is on: its middleware would add Vary: Origin to every answer

    def takes(self, scope: Scope) -> tuple[str, str | None] | None:
        """``(flow id, Idempotency-Key)`` when the lane serves this request; None when FastAPI should."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        if self.app.dependency_overrides:
            return None
        match = self.route.path_regex.match(scope["path"])
        if match is None:
            return None
        flow_id: str = match["flow_id"]
        if not _PLAIN_ID.fullmatch(flow_id):
            return None
        keys = []
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                keys.append(value)
            elif name == b"origin" or name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None  # a browser's call (CORS), or a body: the middleware's business
        if not keys:
            return flow_id, None
        if len(keys) > 1 or not _PLAIN_IDEMPOTENCY_KEY.fullmatch(keys[0]):
            return None
        return flow_id, keys[0].decode("ascii")

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, flow_id: str, idempotency_key: str | None
    ) -> None:
        """Answer the request :meth:`takes` accepted: 202 with the session, or the app's answer to the error."""
        scope["app"] = self.app
        scope["path_params"] = {"flow_id": flow_id}
        request = Request(scope, receive, send)
        state = self.app.state
        try:
            key = await get_api_key(request, None)  # the route's own dependency, called as FastAPI would
            created = await create_session(
                flow_id, request, key, state.flows, state.admission, state.minting, idempotency_key
            )
        except Exception as exc:  # noqa: BLE001 - every error gets the app's answer; nothing was sent yet: the error's answer is the whole answer
            await self._answer_error(request, exc, send)
            return
        body = created.model_dump_json(by_alias=True).encode()
        headers = [(b"content-length", str(len(body)).encode()), _JSON]
        if self.vary_origin:
            headers.append(_VARY_ORIGIN)
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer_error(self, request: Request, exc: Exception, send: Send) -> None:
        handler, unexpected = self._handler(exc)
        if handler is None:
            raise exc
        answer = handler(request, exc)
        response: Response = await answer if inspect.isawaitable(answer) else answer
        if self.vary_origin and not unexpected:  # the 500 is answered outside the CORS middleware, without it
            response.headers.add_vary_header("Origin")
        await response(request.scope, request.receive, send)
        if unexpected:
            raise exc  # after the 500, as ServerErrorMiddleware does: uvicorn logs it

    def _handler(self, exc: Exception) -> tuple[Callable[[Request, Exception], Any] | None, bool]:
        """The app's handler for ``exc`` as Starlette picks it, and whether it is the 500 one (nothing else fits)."""
        handlers: dict[Any, Callable[[Request, Exception], Any]] = self.app.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code], False
        # Starlette's ExceptionMiddleware has every handler but the 500 one; its ServerErrorMiddleware has that one
        found = _lookup_exception_handler({k: v for k, v in handlers.items() if k not in (500, Exception)}, exc)
        if found is not None:
            return cast("Callable[[Request, Exception], Any]", found), False
        return handlers.get(500) or handlers.get(Exception), True
