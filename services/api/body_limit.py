"""Refuse request bodies over a size limit with 413, and bodies not sent within a deadline with 408, before any
route reads them (uvicorn itself waits for a body forever)."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bool]:
    """The request's Content-Length (the first) and whether it has a Transfer-Encoding (a body of unknown length)."""
    declared: bytes | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length" and declared is None:
            declared = value
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


class BodyLimitMiddleware:
    """Buffers at most ``max_bytes`` of a request body (whatever Content-Length says), received within
    ``timeout_s``, and replays it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass non-HTTP traffic through; answer 413 for an oversize body, 408 for one that does not arrive in time."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope["headers"])
        if not chunked and declared in (None, b"0"):  # no body comes (the session POST): nothing to bound or buffer
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        try:
            body = await read_body(receive, self.max_bytes, self.timeout_s)
        except BodyRefusedError as refused:
            await refuse(send, refused.status, str(refused))
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await refuse(send, 413, too_large(self.max_bytes))


class BodyRefusedError(Exception):
    """A body over the limit (413) or not received in time (408); the message is the answer's error."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status


def too_large(max_bytes: int) -> str:
    """The 413's error."""
    return f"request body too large: at most {max_bytes} bytes"


async def read_body(receive: Receive, max_bytes: int, timeout_s: float) -> bytes | None:
    """The whole request body, received within ``timeout_s`` and at most ``max_bytes`` long (whatever Content-Length
    says: :class:`BodyRefusedError` otherwise); None when the client went away."""
    chunks: list[bytes] = []
    size = 0
    more = True
    try:
        async with asyncio.timeout(timeout_s):  # a client trickling its body must not hold a task for good
            while more and size <= max_bytes:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                more = message.get("more_body", False)
    except TimeoutError:
        raise BodyRefusedError(408, f"request body not received within {timeout_s:g} s; send it at once") from None
    if size > max_bytes:
        raise BodyRefusedError(413, too_large(max_bytes))
    return b"".join(chunks)


async def refuse(send: Send, status: int, error: str) -> None:
    """Answer ``status`` with the API's error body before any route ran (408 closes the connection)."""
    payload = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 408:  # the rest of the body may still come: this connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
