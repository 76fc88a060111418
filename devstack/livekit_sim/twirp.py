"""Twirp over HTTP: ``POST /twirp/livekit.<Service>/<Method>`` with protobuf or JSON bodies.

Order as in livekit-server: the auth middleware first (a bad token is a plain-text 401, as
``HandleError`` writes it), then Twirp routing, decoding and the method, whose errors are JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from google.protobuf.json_format import MessageToJson, Parse, ParseError
from google.protobuf.message import DecodeError, Message

from .auth import Claims, TokenError, bearer_token, verify_token
from .errors import TwirpError
from .faults import FaultInjector
from .state import SimState

log = structlog.get_logger("livekit_sim.twirp")

PACKAGE = "livekit"
PROTOBUF = "application/protobuf"
JSON = "application/json"
REQUEST_ID_HEADER = "X-Livekit-Request-Id"


@dataclass(frozen=True)
class Call:
    """What a method handler knows about the call besides its request message."""

    method: str
    claims: Claims | None
    request_id: str


Handler = Callable[[Any, Call], Awaitable[Message]]


@dataclass(frozen=True)
class Route:
    """A Twirp method: its request message type and its handler."""

    request_type: type[Message]
    handler: Handler


class TwirpServer:
    """Serves the registered methods; ``routes`` maps service name -> method name -> route."""

    def __init__(
        self, routes: dict[str, dict[str, Route]], keys: dict[str, str], faults: FaultInjector, state: SimState
    ) -> None:
        self._routes = routes
        self._keys = keys
        self._faults = faults
        self._state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for ``/twirp/{service}/{method}`` (any HTTP method), counted while in flight."""
        self._state.request_started(request.match_info.get("method", ""))
        try:
            return await self._handle(request)
        finally:
            self._state.request_finished()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            token = bearer_token(request.headers.get("Authorization"), request.query.get("access_token"))
            claims = verify_token(token, self._keys) if token else None
        except TokenError as exc:
            return web.Response(status=401, text=str(exc))
        method = request.match_info.get("method", "")
        try:
            route = self._route(request)
            error, run = await self._faults.before(method)
            response = None
            if run:
                response = await self._call(request, route, Call(method, claims, _request_id(request)))
            if error is not None:
                raise error
            assert response is not None
            return _encode(response, request.content_type)
        except TwirpError as exc:
            log.info("twirp error", method=method, code=exc.code, msg=exc.msg)
            return web.Response(status=exc.status, body=exc.body(), content_type=JSON)

    def _route(self, request: web.Request) -> Route:
        service = request.match_info.get("service", "")
        method = request.match_info.get("method", "")
        if request.method != "POST":
            raise TwirpError("bad_route", f"unsupported method {request.method} (only POST is allowed)")
        prefix = PACKAGE + "."
        route = self._routes.get(service.removeprefix(prefix), {}).get(method) if service.startswith(prefix) else None
        if route is None:
            raise TwirpError("bad_route", f"no handler for path {request.path!r}")
        if request.content_type not in (PROTOBUF, JSON):
            raise TwirpError("bad_route", f"unexpected Content-Type: {request.content_type!r}")
        return route

    async def _call(self, request: web.Request, route: Route, call: Call) -> Message:
        body = await request.read()
        message = route.request_type()
        try:
            if request.content_type == JSON:
                Parse(body or b"{}", message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except (DecodeError, ParseError) as exc:
            raise TwirpError("malformed", f"the request could not be decoded: {exc}") from exc
        return await route.handler(message, call)


def _request_id(request: web.Request) -> str:
    return request.headers.get(REQUEST_ID_HEADER, "")


def _encode(message: Message, content_type: str) -> web.Response:
    if content_type == JSON:
        text = MessageToJson(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return web.Response(text=text, content_type=JSON)
    return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)
