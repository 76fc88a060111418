"""The session POST's hot lane: a plainly valid ``POST /api/flows/{flow_id}/sessions`` is served in one frame,
without Starlette's middleware stack and router; every other request goes through FastAPI as before.

Why (docs/performance.md): that stack cost ~60 µs of the API's ~380 µs of CPU per session POST, for work this request
does not need: its body limit (the request has no body), CORS (it has no Origin: a backend's call), FastAPI's exit
stack and dependency solving (the route has no dependency of its own), the router's matching. The lane keeps what the
request does need: the same route function (:func:`services.api.routes.sessions.create_session`), the same checks of
what the client sent, and what :mod:`services.api.lanes` keeps of the stack for every lane (the app's exception
handlers, ``Vary: Origin``).

Plainly valid: a POST to the route's path (no root path) whose flow id and at most one ``Idempotency-Key`` pass the
declared parameters' rules, without Origin, without a body, and with no dependency override (tests compare the lane
with FastAPI's handler that way). Anything else gets FastAPI's own answer (405, 413, 422, CORS...).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from services.api.access import get_api_key
from services.api.lanes import answer, plain_post
from services.api.params import ID_MAX
from services.api.routes.sessions import create_session

_PLAIN_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{ID_MAX}}}")  # params.FlowId's rule
_PLAIN_IDEMPOTENCY_KEY = re.compile(rb"[\x21-\x7e]{1,200}")  # sessions.IdempotencyKey's rule


class HotLane:
    """Serves ``route`` (the session POST) for plainly valid requests; :meth:`takes` says which."""

    def __init__(self, app: FastAPI, route: APIRoute, vary_origin: bool) -> None:
        self.app = app
        self.route = route
        self.vary_origin = vary_origin  # CORS is on: its middleware would add Vary: Origin to every answer

    def takes(self, scope: Scope) -> tuple[str, str | None] | None:
        """``(flow id, Idempotency-Key)`` when the lane serves this request; None when FastAPI should."""
        if not plain_post(self.app, scope):
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

    async def serve(self, scope: Scope, receive: Receive, send: Send, args: tuple[Any, ...]) -> None:
        """Answer the request :meth:`takes` accepted: 202 with the session, or the app's answer to the error."""
        flow_id, idempotency_key = args
        scope["path_params"] = {"flow_id": flow_id}
        state = self.app.state

        async def created(request: Request) -> bytes:
            key = await get_api_key(request, None)  # the route's own dependency, called as FastAPI would
            session = await create_session(
                flow_id, request, key, state.flows, state.admission, state.minting, idempotency_key
            )
            return session.model_dump_json(by_alias=True).encode()

        await answer(self.app, scope, receive, send, self.vary_origin, 202, created)
