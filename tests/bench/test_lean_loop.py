"""The lean open loop (bench.lean_loop) against real HTTP servers: it sends what aiohttp sends, answers every request
exactly once whatever the server does to the connection, and measures as bench.loadgen's open loop does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench import lean_loop
from bench.lean_loop import LeanOpenLoop
from bench.load_spec import LoadSpec, lean_applies
from bench.loadgen import run_load
from bench.phases import run_loadgen
from devstack.server_process import free_tcp_port
from tests.bench.serving import Handler, serving

PATH = "/api/flows/f/sessions"


@contextlib.asynccontextmanager
async def _serving(handler: Handler | None = None) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A real server answering every path with ``handler`` (default: 202 with a new session id); yields its URL and
    the requests it saw."""
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if handler is not None:
            return await handler(request)
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with serving({"/{tail:.*}": record}, shutdown_timeout=0.1) as url:
        yield url, seen


def _spec(url: str, engine: str = "lean", **kwargs: float) -> LoadSpec:
    values = {"rate": 200.0, "duration_s": 0.1, **kwargs}
    headers = {"Authorization": "Bearer k"}
    return LoadSpec(base_url=url, path=PATH, mode="open", headers=headers, engine=engine, **values)


async def test_it_sends_what_aiohttp_sends() -> None:
    async with _serving() as (url, seen):
        await run_load(_spec(url, "aiohttp", rate=100, duration_s=0.03))
        by_aiohttp = [(r.method, r.path_qs, dict(r.headers)) for r in seen if r.method == "POST"]
        seen.clear()
        await run_load(_spec(url, "lean", rate=100, duration_s=0.03))
        by_lean = [(r.method, r.path_qs, dict(r.headers)) for r in seen if r.method == "POST"]
    assert len(by_aiohttp) == len(by_lean) == 3
    for _, _, headers in by_aiohttp + by_lean:
        headers.pop("User-Agent")
    assert by_lean == by_aiohttp


async def test_every_answer_class_is_counted_with_its_latency() -> None:
    count = {"n": 0}

    async def alternate(_: web.Request) -> web.Response:
        count["n"] += 1
        if count["n"] % 2:
            return web.json_response({"error": "overloaded"}, status=503, headers={"Retry-After": "1"})
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with _serving(alternate) as (url, _):
        result = await run_load(_spec(url))
    assert result.statuses == {"503": 10, "202": 10}
    assert {status: len(ms) for status, ms in result.latencies_by_status.items()} == result.statuses
    assert len(set(result.session_ids)) == 10, "the 202s' session ids, none from the 503s"
    assert all(ms > 0 for ms in result.latencies_ms)


async def test_a_connection_the_server_closes_after_its_answer_is_replaced() -> None:
    ports: list[int] = []

    async def closing(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports.append(request.transport.get_extra_info("peername")[1])
        response = web.json_response({"sessionId": uuid.uuid4().hex}, status=202)
        response.force_close()
        return response

    async with _serving(closing) as (url, _):
        result = await run_load(_spec(url, max_in_flight=2))
    assert result.statuses == {"202": 20}
    assert len(ports) == 22 and len(set(ports)) == 22, "each request (and warm-up) on a new connection, as asked"


async def test_a_connection_dropped_under_a_request_is_an_answer_of_its_own() -> None:
    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(1)
        return web.Response(status=500)

    async with _serving(drop) as (url, _):
        result = await asyncio.wait_for(run_load(_spec(url, max_in_flight=4)), timeout=10)
    assert result.statuses == {"ServerDisconnectedError": 20}


async def test_nothing_listening_gives_connect_errors_not_a_hang() -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    result = await asyncio.wait_for(run_load(_spec(url, max_in_flight=4)), timeout=10)
    assert result.statuses == {"ConnectionRefusedError": 20}


async def test_a_request_sent_before_its_scheduled_time_counts_from_its_send() -> None:
    """uvloop's timers (millisecond resolution) can wake the loop early; latency must not shrink."""
    async with _serving() as (url, _):
        loop = LeanOpenLoop(_spec(url), "/healthz")
        loop.finished = asyncio.get_running_loop().create_future()
        loop.sending_done = True
        loop.submit(time.perf_counter() + 0.05)  # woke 50 ms early
        await asyncio.wait_for(loop.finished, timeout=5)
    assert loop.result.statuses == {"202": 1}
    assert loop.result.latencies_ms[0] > 0  # measured from the scheduled time, it would be about -48 ms


def test_the_lean_engine_is_the_plain_open_loop_s() -> None:
    assert lean_applies(_spec("http://h", "auto"))
    assert not lean_applies(_spec("http://h", "aiohttp"))
    closed = LoadSpec(base_url="http://h", path=PATH, mode="closed")
    assert not lean_applies(closed), "closed loops stay aiohttp's"
    following = LoadSpec(base_url="http://h", path=PATH, mode="open", follow=True)
    assert not lean_applies(following), "SSE following stays aiohttp's"
    with pytest.raises(ValueError, match="open loops without follow"):
        lean_applies(LoadSpec(base_url="http://h", path=PATH, mode="open", follow=True, engine="lean"))
    with pytest.raises(ValueError, match="unknown load generator engine 'curl'"):
        lean_applies(LoadSpec(base_url="http://h", path=PATH, mode="open", engine="curl"))


async def test_the_generator_process_runs_it_on_uvloop() -> None:
    """As the benchmark runs it: ``python -m bench.loadgen`` in its own process, on uvloop."""
    async with _serving() as (url, _):
        result = await asyncio.wait_for(run_loadgen(_spec(url, "auto")), timeout=30)
    assert result.statuses == {"202": 20}
    assert len(set(result.session_ids)) == 20


async def test_requests_waiting_longer_than_the_timeout_for_a_connection_are_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the polling baseline's open loop: slow answers, few connections, a queue outlasting timeout + grace."""
    monkeypatch.setattr(lean_loop, "LOST_TRACK_S", 0.1)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(0.25)
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with _serving(slow) as (url, _):
        spec = _spec(url, rate=100, duration_s=0.1, max_in_flight=2, timeout_s=0.4)
        result = await asyncio.wait_for(run_load(spec), timeout=10)
    assert result.statuses == {"202": 10}  # ~1.25 s of answers, past timeout_s + LOST_TRACK_S = 0.5 s
    assert result.slot_waits > 0


async def test_a_loop_without_progress_raises_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lean_loop, "LOST_TRACK_S", 0.05)
    loop = LeanOpenLoop(_spec("http://127.0.0.1:1", timeout_s=0.05), "/healthz")
    loop.outstanding = 3  # as if three requests were dropped by a bug: never answered, failed or timed out
    with pytest.raises(RuntimeError, match="lost track of 3 requests"):
        await asyncio.wait_for(loop._answers(asyncio.get_running_loop().create_future()), timeout=5)


async def test_a_connection_idle_for_long_is_closed_before_the_server_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow answers at the start and at the end open extra connections; between them one connection serves. Those
    left idle in between are closed, so the end's spike opens new ones rather than reusing one the server may be
    closing (the keep-alive race): no connection carries a request after being idle longer than the limit."""
    monkeypatch.setattr(lean_loop, "IDLE_KEEP_S", 0.2)
    arrivals: dict[int, list[float]] = {}
    count = {"n": 0}

    async def slow_at_the_ends(request: web.Request) -> web.Response:
        assert request.transport is not None
        arrivals.setdefault(request.transport.get_extra_info("peername")[1], []).append(time.perf_counter())
        count["n"] += 1
        if count["n"] <= 5 or count["n"] > 33:
            await asyncio.sleep(0.15)
        return web.json_response({"sessionId": uuid.uuid4().hex}, status=202)

    async with _serving(slow_at_the_ends) as (url, _):
        result = await asyncio.wait_for(run_load(_spec(url, rate=20, duration_s=2.0, max_in_flight=8)), 10)
    assert result.statuses == {"202": 40}
    gaps = [later - earlier for times in arrivals.values() for earlier, later in itertools.pairwise(times)]
    assert len(arrivals) > 2, "the slow answers needed connections of their own"
    assert max(gaps) < 0.8, f"a connection was reused after {max(gaps):.2f} s (limit 0.2 s idle + a 0.15 s answer)"
