"""CORS: which browser origins may call the API (``CORS_ALLOW_ORIGINS``), and the middleware that answers preflights.

Production default: none (no middleware; a browser on another origin is refused by the browser itself). In dev
mode, local origins (``http://localhost:<port>``, ``http://127.0.0.1:<port>``, ``http://[::1]:<port>``) are allowed
too. ``*`` is refused outside dev mode: list the origins of your frontends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

DEV_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"
ALLOWED_METHODS = ("GET", "POST", "PATCH", "DELETE")
ALLOWED_HEADERS = ("authorization", "content-type", "idempotency-key")
EXPOSED_HEADERS = ("retry-after",)  # a 429's Retry-After, readable by the frontend
PREFLIGHT_MAX_AGE_S = 600
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")


def check_origin(origin: str) -> str:
    """``origin`` if it is ``scheme://host[:port]`` as a browser sends it (no path, no trailing slash);
    ValueError with an example otherwise."""
    problem = f"{origin!r} is not an origin; write it as a browser sends it, e.g. https://app.example.com"
    try:
        parts = urlsplit(origin)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(problem) from exc
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if (
        parts.scheme not in ("http", "https")
        or not _HOST.match(host)
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        raise ValueError(problem)
    return origin


def allowed_origins(value: str, dev_mode: bool) -> tuple[str, ...]:
    """The origins of a ``CORS_ALLOW_ORIGINS`` value (comma-separated); ``*`` only in dev mode."""
    origins = tuple(o.strip() for o in value.split(",") if o.strip())
    if "*" in origins:
        if not dev_mode:
            raise ValueError(
                "CORS_ALLOW_ORIGINS='*' lets every website call this API; outside dev mode list your frontends' "
                "origins instead, e.g. CORS_ALLOW_ORIGINS=https://app.example.com,https://admin.example.com"
            )
        return ("*",)
    for origin in origins:
        try:
            check_origin(origin)
        except ValueError as exc:
            raise ValueError(f"CORS_ALLOW_ORIGINS: {exc}") from exc
    return origins


class _Cors(CORSMiddleware):
    """Starlette's CORS, except that a preflight from an origin not allowed gets no CORS header at all."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request without Origin (a backend's, the session POST's hot path) only gets ``Vary: Origin`` added, as
        Starlette adds it, without its per-request header objects."""
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def vary_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_vary_origin(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, vary_origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        """The usual preflight answer for an allowed origin; a bare 400 (the browser refuses the call) otherwise.

        Every refusal is the API's JSON error body, as documented (Starlette's own are plain text)."""
        if not self.is_allowed_origin(request_headers["origin"]):
            return JSONResponse(
                {"error": "this origin may not call the API: add it to CORS_ALLOW_ORIGINS"},
                400,
                headers={"Vary": "Origin"},
            )
        answer = super().preflight_response(request_headers)
        if answer.status_code >= 400 and isinstance(answer, PlainTextResponse):
            headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
            return JSONResponse({"error": bytes(answer.body).decode()}, answer.status_code, headers=headers)
        return answer


def with_vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` added to their Vary header, where Starlette's ``MutableHeaders`` puts it (in place of
    the first, else last)."""
    raw = list(headers)
    found = [i for i, (name, _) in enumerate(raw) if name == b"vary"]
    vary = (b"vary", b", ".join([*(raw[i][1] for i in found), b"Origin"]))
    if not found:
        return [*raw, vary]
    raw[found[0]] = vary
    return [item for i, item in enumerate(raw) if i not in found[1:]]


def install_cors(app: FastAPI, origins: tuple[str, ...], dev_mode: bool) -> bool:
    """Answer preflights and add CORS headers for ``origins`` (plus local origins in dev mode); nothing when none.
    Whether it was installed."""
    regex = DEV_ORIGIN_REGEX if dev_mode else None
    if not origins and regex is None:
        return False
    # Outermost (added last): error answers (401, 403, 413, 429) carry the headers too, so a page can read them.
    app.add_middleware(
        _Cors,
        allow_origins=list(origins),
        allow_origin_regex=regex,
        allow_methods=list(ALLOWED_METHODS),
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,  # bearer credentials, never cookies
        max_age=PREFLIGHT_MAX_AGE_S,
    )
    return True
