"""The LiveKit webhook's lane: a plainly valid ``POST /api/livekit/webhook`` is served in front of Starlette's
middleware stack and router (:mod:`services.api.lanes`).

Why (docs/performance.md): LiveKit sends ~4 webhooks per session (room started and finished, the agent's arrival and
departure; the user's too with a real frontend), and through FastAPI each cost ~670 µs of the API's CPU, ~2x a
session POST: the API's largest per-session cost. The lane does the route's own work
(:func:`services.api.routes.webhooks.acknowledge`: the SDK's signature check, the events published) and what the
body limit did: the body is read within ``BODY_TIMEOUT_S`` (408 otherwise) and is at most ``MAX_BODY_BYTES``.

Plainly valid: a POST to the webhook's path with a Content-Length within the limit (no chunked body), at most one
Authorization header, no Origin (LiveKit is no browser). Anything else gets FastAPI's own answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.types import Message, Receive, Scope, Send

from contracts.routes import LIVEKIT_WEBHOOK_PATH
from services.api.body_limit import BodyRefusedError, read_body, refuse
from services.api.cors import with_vary_origin
from services.api.lanes import answer, plain_post
from services.api.routes.webhooks import acknowledge
from services.api.settings import ApiSettings


class WebhookLane:
    """Serves LiveKit's webhooks for plainly valid requests; :meth:`takes` says which."""

    def __init__(self, app: FastAPI, settings: ApiSettings, vary_origin: bool) -> None:
        self.app = app
        self.max_bytes = settings.max_body_bytes
        self.timeout_s = settings.body_timeout_s
        self.vary_origin = vary_origin

    def takes(self, scope: Scope) -> tuple[str | None] | None:
        """``(Authorization,)`` when the lane serves this request; None when FastAPI should."""
        if not plain_post(self.app, scope) or scope["path"] != LIVEKIT_WEBHOOK_PATH:
            return None
        authorization: list[bytes] = []
        declared = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value)
            elif name == b"content-length" and declared is None:
                declared = value
            elif name == b"origin" or name == b"transfer-encoding":
                return None  # a browser's call (CORS), or a body of unknown length: the middleware's business
        if declared is None or not declared.isdigit() or int(declared) > self.max_bytes or len(authorization) > 1:
            return None
        return (authorization[0].decode("latin-1") if authorization else None,)

    async def serve(self, scope: Scope, receive: Receive, send: Send, args: tuple[Any, ...]) -> None:
        """Read the body (bounded), then answer as the route does: the acknowledgement, or the app's error answer."""
        (authorization,) = args
        try:
            body = await read_body(receive, self.max_bytes, self.timeout_s)
        except BodyRefusedError as refused:
            await refuse(self._with_vary(send), refused.status, str(refused))
            return
        if body is None:  # the client went away
            return
        state = self.app.state

        async def acknowledged(_: Request) -> bytes:
            ack = await acknowledge(body, authorization, state.settings, state.publisher)
            return ack.model_dump_json().encode()

        await answer(self.app, scope, receive, send, self.vary_origin, 200, acknowledged)

    def _with_vary(self, send: Send) -> Send:
        if not self.vary_origin:
            return send

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_vary_origin(message["headers"])  # as the CORS middleware adds it
            await send(message)

        return sending
