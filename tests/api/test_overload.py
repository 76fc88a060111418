"""The in-flight cap against the API served as in production: requests over MAX_REQUESTS_IN_FLIGHT are answered 503
with Retry-After before they reach the app, probes keep answering, and an open event stream holds no slot; past half
the cap a request that arrives while the event loop lags is refused too."""

from __future__ import annotations

import asyncio
import json
import time
from typing import cast

from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.api.overload import InFlightCap
from services.api.serving import BoundedHeadProtocol
from services.api.settings import ApiSettings
from tests.api.served import Served, new_org_key, new_sessions, open_events, serve
from tests.polling import wait_until

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _in_flight() -> float:
    return REGISTRY.get_sample_value("agentready_api_requests_in_flight") or 0.0


def _refusals() -> float:
    return REGISTRY.get_sample_value("agentready_api_overload_refusals_total") or 0.0


async def _send(port: int, head: str, connection: Connection | None = None) -> Connection:
    reader, writer = connection or await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    await writer.drain()
    return reader, writer


async def _answer(connection: Connection) -> tuple[int, dict[str, str], bytes]:
    """One response on a kept-alive connection: status, headers (lower-case names), body."""
    reader, _writer = connection
    async with asyncio.timeout(5):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split(" ", 2)[1]), headers, body


def _get(path: str, key: str = "") -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: api.test\r\n{auth}\r\n"


def _post_flow(key: str, body: str) -> str:
    return (
        f"POST /api/flows HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    )


async def _hold(served: Served, key: str, count: int) -> list[Connection]:
    """``count`` requests whose bodies never come: in flight until their clients leave."""
    held = [
        await _send(served.port, _post_flow(key, "{").replace("Content-Length: 1", "Content-Length: 100"))
        for _ in range(count)
    ]
    await wait_until(lambda: _in_flight() == count, deadline_s=5, what=f"{count} requests in flight")
    return held


async def _release(held: list[Connection]) -> None:
    """Close the held requests' connections and wait for their slots to come back."""
    for _reader, writer in held:
        writer.close()
    await wait_until(lambda: _in_flight() == 0, deadline_s=5, what="the slots given back")


async def test_requests_over_the_cap_get_503_with_retry_after_and_probes_still_answer(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_requests_in_flight=2) as served:
        _cap(served).sustained_s = float("inf")  # the count alone: the second held request is past half the cap
        key = await new_org_key(database_url)
        held = await _hold(served, key, 2)
        refused_before = _refusals()

        refused = await _send(served.port, _get("/api/flows", key))
        status, headers, body = await _answer(refused)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["content-type"] == "application/json"
        assert "overloaded" in json.loads(body)["error"]
        assert _refusals() == refused_before + 1

        for probe in ("/healthz", "/readyz", "/metrics"):  # never counted, never refused
            status, _headers, body = await _answer(await _send(served.port, _get(probe)))
            assert status == 200, (probe, body)
        assert b"agentready_api_overload_refusals_total" in body

        await _release(held)
        status, _headers, body = await _answer(await _send(served.port, _get("/api/flows", key), refused))
        assert status == 200, body  # the refused client's kept-alive connection is served now


async def test_an_open_event_stream_gives_its_slot_back(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_requests_in_flight=1) as served:
        key = await new_org_key(database_url)
        [session_id] = await new_sessions(served.app, key, 1)
        stream = await open_events(served.port, session_id, key)
        assert stream.status == 200
        await wait_until(lambda: _in_flight() == 0, deadline_s=5, what="the stream's slot given back")
        status, _headers, body = await _answer(await _send(served.port, _get(f"/api/sessions/{session_id}", key)))
        assert status == 200, body  # served while the stream stays open
        await stream.close()


def _hold_the_loop(seconds: float) -> None:
    """Keep the event loop busy, as a saturated process does (CPU work, not a wait for anything)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def _cap(served: Served) -> InFlightCap:
    cap = cast("type[BoundedHeadProtocol]", served.server.config.http).in_flight_cap
    assert cap is not None
    return cap


async def test_past_half_the_cap_a_request_arriving_while_the_loop_lags_is_refused(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_requests_in_flight=4) as served:  # half the cap: 2 always served
        key = await new_org_key(database_url)
        held = await _hold(served, key, 2)  # half the cap in flight
        refused_before = _refusals()

        _cap(served).lag.cpu_clock = time.perf_counter  # on a CPU all along, however busy the test machine is
        lagging = await _send(served.port, _get("/api/flows", key))
        _hold_the_loop(0.3)  # the server shares this loop: it reads the request 300 ms late
        status, headers, body = await _answer(lagging)
        assert status == 503, body  # two slots were still free: the count alone would have served it
        assert headers["retry-after"] == "1"
        assert "overloaded" in json.loads(body)["error"]
        assert _refusals() == refused_before + 1
        assert _in_flight() == 2

        # An agent's flow init finishes a session the API already took: the lag does not refuse it (403 here:
        # it carries no credential, so it was served).
        flow_init = await _send(
            served.port, f"POST /internal/sessions/{'0' * 32}/flow-init HTTP/1.1\r\nHost: api.test\r\n\r\n"
        )
        _hold_the_loop(0.3)
        status, _headers, body = await _answer(flow_init)
        assert status == 403 and b"agent credential" in body, body
        assert _refusals() == refused_before + 1

        cap = _cap(served)
        await wait_until(lambda: cap.lag.late_for_s() == 0, deadline_s=5, what="the loop caught up")
        status, _headers, body = await _answer(await _send(served.port, _get("/api/flows", key)))
        assert status == 200, body  # the loop keeps up again: a free slot serves
        await _release(held)


async def test_past_half_the_cap_a_loop_late_because_others_hold_the_cpu_still_serves(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_requests_in_flight=4) as served:  # half the cap: 2 always served
        key = await new_org_key(database_url)
        held = await _hold(served, key, 2)  # half the cap in flight
        refused_before = _refusals()

        late = await _send(served.port, _get("/api/flows", key))
        time.sleep(0.3)  # noqa: ASYNC251 - the loop's thread off the CPU for 300 ms, as when other processes hold it
        status, _headers, body = await _answer(late)
        assert status == 200, body  # 300 ms late, but not for its own work: not overload
        assert _refusals() == refused_before
        await _release(held)


async def test_a_refused_request_s_body_is_skipped_and_its_connection_serves_the_next(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_requests_in_flight=1) as served:
        key = await new_org_key(database_url)
        held = await _hold(served, key, 1)

        flow = json.dumps({"name": "refused", "greeting": "Hello."})
        refused = await _send(served.port, _post_flow(key, flow))  # answered in the parser; its body follows
        status, _headers, _body = await _answer(refused)
        assert status == 503
        await _release(held)

        status, _headers, body = await _answer(await _send(served.port, _get("/api/flows", key), refused))
        assert status == 200, body  # the refused body was not read as the next request
        assert "refused" not in body.decode()  # nor created the flow it carried
