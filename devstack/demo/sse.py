"""The second witness: ``GET /api/sessions/{id}/events`` (Server-Sent Events) followed until ``ready``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

TERMINAL = frozenset({"failed", "expired", "ended"})


class SseError(Exception):
    """The stream ended, failed or reported a terminal status before ``ready``; ``reason`` categorises it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Parse an SSE line stream into ``(event, data)`` pairs; comments and ``retry:`` are skipped."""
    name, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


async def wait_until_ready(client: httpx.AsyncClient, session_id: str, headers: dict[str, str]) -> None:
    """Return when the session's event stream says ``ready``; SseError on anything else.

    The caller bounds the wait (asyncio.timeout); the read timeout is lifted because a stream may be idle.
    """
    url = f"/api/sessions/{session_id}/events"
    try:
        async with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(10.0, read=None)) as response:
            if response.status_code != 200:
                await response.aread()
                raise SseError(f"sse_http_{response.status_code}", response.text[:200])
            async for name, data in events(response.aiter_lines()):
                if name != "status":
                    continue
                status = json.loads(data).get("status")
                if status == "ready":
                    return
                if status in TERMINAL:
                    raise SseError(f"sse_{status}", data[:200])
    except httpx.HTTPError as exc:
        raise SseError("sse_error", f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        raise SseError("sse_error", f"bad event data: {exc}") from exc
    raise SseError("sse_closed", "the stream ended before 'ready'")
