"""One simulated frontend: request a session, join its room, wait for ``agent.ready``, read the stage times."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from contracts.datachannel import AGENT_STATUS_TOPIC, trusted_sender
from devstack.demo.rooms import FrontendRoom, JoinError, RoomClosedError, RoomFactory, room_not_created_yet
from devstack.demo.sse import SseError, wait_until_ready

STAGES = ("requested", "dispatched", "agentJoined", "ready")  # as GET /api/sessions/{id} names them
_LABELS = {"agentJoined": "agent_joined"}
_RETRIED = {429, 503}
_MAX_RETRY_WAIT_S = 5.0
_JOIN_RETRY_FIRST_S = 0.05  # a refused join (room not created yet) is tried again after this, doubling
_JOIN_RETRY_MAX_S = 1.0


@dataclass
class SessionResult:
    """What one frontend saw; times in seconds, measured from its first POST."""

    index: int
    ok: bool = False
    session_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    http_s: float | None = None  # the answered POST's own latency
    http_retries: int = 0
    join_s: float | None = None
    ready_s: float | None = None  # agent.ready on the data channel
    sse_ready_s: float | None = None  # ``ready`` on the event stream
    stages: dict[str, float] = field(default_factory=dict)  # server-side, e.g. "requested→dispatched"
    cleanup_error: str | None = None


@dataclass(frozen=True)
class Frontend:
    """What every frontend shares: clients, the flow, the API key header and the deadlines."""

    client: httpx.AsyncClient
    rooms: RoomFactory
    flow_id: str
    headers: dict[str, str]
    ready_timeout_s: float = 30.0
    join_timeout_s: float = 10.0
    sse_grace_s: float = 5.0
    end_sessions: bool = True


class _Failed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


async def run_frontend(frontend: Frontend, index: int) -> SessionResult:
    """Run one frontend's whole journey; never raises for a failed session (the result says why)."""
    result = SessionResult(index)
    try:
        await _journey(frontend, result)
        result.ok = True
    except _Failed as exc:
        result.reason, result.detail = exc.reason, exc.detail
    except Exception as exc:  # noqa: BLE001 - one frontend's surprise is reported per session, the run goes on
        result.reason, result.detail = "unexpected_error", f"{type(exc).__name__}: {exc}"
    return result


async def _journey(frontend: Frontend, result: SessionResult) -> None:
    started = time.monotonic()
    created = await _request_session(frontend, result, started)
    session_id = result.session_id = str(created["sessionId"])
    deadline = time.monotonic() + frontend.ready_timeout_s
    sse = asyncio.create_task(_witness(frontend, session_id, started, result))
    room: FrontendRoom | None = None
    try:
        joining = time.monotonic()
        room = await _join(frontend, str(created["livekitUrl"]), str(created["token"]))
        result.join_s = time.monotonic() - joining
        await _agent_ready(frontend, room, session_id, deadline, sse)
        result.ready_s = time.monotonic() - started
        await _second_witness(frontend, sse, max(deadline - time.monotonic(), frontend.sse_grace_s))
        result.stages = await _stage_times(frontend, session_id)
    except JoinError as exc:
        raise _Failed(exc.reason, exc.detail) from exc
    finally:
        sse.cancel()
        with contextlib.suppress(asyncio.CancelledError, SseError):
            await sse
        if room is not None:
            await room.disconnect()
        if frontend.end_sessions:
            await _end(frontend, session_id, result)


async def _join(frontend: Frontend, livekit_url: str, token: str) -> FrontendRoom:
    """Join the session's room. LiveKit creates no room on join here (``room.auto_create: false``) and the dispatcher
    creates it just after the 202: a join that came first is refused (404) and tried again, until the join timeout."""
    end = time.monotonic() + frontend.join_timeout_s
    pause = _JOIN_RETRY_FIRST_S
    while True:
        room = await frontend.rooms.room(livekit_url, token)
        try:
            await room.connect(max(end - time.monotonic(), 0.1))
        except JoinError as exc:
            await room.disconnect()
            if not room_not_created_yet(exc) or time.monotonic() + pause > end:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, _JOIN_RETRY_MAX_S)
            continue
        return room


async def _request_session(frontend: Frontend, result: SessionResult, started: float) -> dict[str, Any]:
    """POST the session request; 429/503 are retried (same Idempotency-Key) after Retry-After, within the budget."""
    headers = {**frontend.headers, "Idempotency-Key": uuid.uuid4().hex}
    while True:
        sent = time.monotonic()
        try:
            response = await frontend.client.post(f"/api/flows/{frontend.flow_id}/sessions", headers=headers)
        except httpx.HTTPError as exc:
            raise _Failed("http_error", f"{type(exc).__name__}: {exc}") from exc
        result.http_s = time.monotonic() - sent
        if response.status_code == 202:
            body: dict[str, Any] = response.json()
            return body
        wait = min(_retry_after(response), _MAX_RETRY_WAIT_S)
        if response.status_code not in _RETRIED or time.monotonic() + wait - started > frontend.ready_timeout_s:
            raise _Failed(f"http_{response.status_code}", response.text[:300])
        result.http_retries += 1
        await asyncio.sleep(wait)  # the server asked for this pause (Retry-After)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "1")), 0.1)
    except ValueError:
        return 1.0


async def _witness(frontend: Frontend, session_id: str, started: float, result: SessionResult) -> None:
    await wait_until_ready(frontend.client, session_id, frontend.headers)
    result.sse_ready_s = time.monotonic() - started


async def _agent_ready(
    frontend: Frontend, room: FrontendRoom, session_id: str, deadline: float, sse: asyncio.Task[None]
) -> None:
    """Wait for this session's ``agent.ready`` packet until ``deadline``; ``agent.failed`` fails at once."""
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            while True:
                packet = await room.receive(AGENT_STATUS_TOPIC)
                payload = json.loads(packet.payload)
                if not isinstance(payload, dict) or payload.get("sessionId") != session_id:
                    continue
                # anyone in the room may publish on agent-status: only the agent (or, for agent.failed, the server)
                sender = {"from_agent": packet.from_agent, "from_server": packet.from_server}
                if not trusted_sender(AGENT_STATUS_TOPIC, payload.get("type"), **sender):
                    continue
                if payload.get("type") == "agent.ready":
                    return
                if payload.get("type") == "agent.failed":
                    raise _Failed(f"agent_failed@{payload.get('stage')}", str(payload.get("reason")))
    except RoomClosedError as exc:
        raise _Failed("room_closed", str(exc)) from exc
    except ValueError as exc:
        raise _Failed("bad_packet", f"agent-status packet is not JSON: {exc}") from exc
    except TimeoutError as exc:
        status = await _status(frontend, session_id)
        if sse.done() and sse.exception() is None:  # the server says ready: the packet went astray
            raise _Failed("data_missed", "SSE says ready but no agent.ready packet arrived") from exc
        raise _Failed(f"ready_timeout@{status}", f"no agent.ready within {frontend.ready_timeout_s:.0f}s") from exc


async def _second_witness(frontend: Frontend, sse: asyncio.Task[None], wait_s: float) -> None:
    """The event stream must agree: ``ready`` before the session's deadline (at least a grace period later)."""
    try:
        await asyncio.wait_for(asyncio.shield(sse), timeout=wait_s)
    except TimeoutError as exc:
        raise _Failed("sse_timeout", f"no 'ready' event within {wait_s:.0f}s after agent.ready") from exc
    except SseError as exc:
        raise _Failed(exc.reason, exc.detail) from exc


async def _status(frontend: Frontend, session_id: str) -> str:
    try:
        response = await frontend.client.get(f"/api/sessions/{session_id}", headers=frontend.headers)
        return str(response.json().get("status")) if response.status_code == 200 else f"http_{response.status_code}"
    except (httpx.HTTPError, ValueError):
        return "unknown"


async def _stage_times(frontend: Frontend, session_id: str, settle_s: float = 3.0) -> dict[str, float]:
    """Seconds between consecutive stages (and requested→ready), from the server's own timestamps.

    Events arrive out of order (the agent can be ready before ``session.dispatched`` is recorded), so a
    missing stage is asked for again for up to ``settle_s``.
    """
    deadline = time.monotonic() + settle_s
    while True:
        try:
            response = await frontend.client.get(f"/api/sessions/{session_id}", headers=frontend.headers)
        except httpx.HTTPError as exc:
            raise _Failed("http_error", f"GET session: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise _Failed(f"http_{response.status_code}", f"GET session: {response.text[:200]}")
        raw = response.json().get("stages") or {}
        if all(raw.get(name) for name in STAGES) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    at = {name: datetime.fromisoformat(raw[name]) for name in STAGES if raw.get(name)}
    times: dict[str, float] = {}
    for earlier, later in [*itertools.pairwise(STAGES), ("requested", "ready")]:
        if earlier in at and later in at:
            name = f"{_LABELS.get(earlier, earlier)}→{_LABELS.get(later, later)}"
            times[name] = (at[later] - at[earlier]).total_seconds()
    return times


async def _end(frontend: Frontend, session_id: str, result: SessionResult) -> None:
    """DELETE the session, so its room is cleaned up and its admission slot freed."""
    try:
        response = await frontend.client.delete(f"/api/sessions/{session_id}", headers=frontend.headers)
        if response.status_code not in (200, 202, 404):
            result.cleanup_error = f"DELETE: HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        result.cleanup_error = f"DELETE: {type(exc).__name__}"
