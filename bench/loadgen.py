"""The load generator: its own process, aiohttp with keep-alive pools on uvloop, JSON in and out.

Closed loop: ``concurrency`` clients send back to back (maximum throughput, or a burst of ``count``).
Open loop: requests start at fixed arrival times whatever the answers; latency is measured from the
*scheduled* time, so a slow server cannot hide its slowness by slowing the generator (coordinated omission).
At most ``max_in_flight`` requests are outstanding (the connection pool's size): past that bound a request waits
for a slot, its wait counted in its latency and in ``slot_waits``, so an overloaded server cannot make the
generator hold an unbounded number of tasks and sockets. Client timeouts are answers of their own (``TimeoutError``).
``follow`` also opens each new session's SSE stream and records POST -> ``ready``. The generator's own event loop
lag (a 10 ms timer's lateness) is reported: a late generator sends late, and its lateness counts in every latency.
Run: ``python -m bench.loadgen < spec.json > result.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import asdict

import aiohttp

from bench.lean_loop import LeanOpenLoop
from bench.load_spec import IDLE_KEEP_S, LoadResult, LoadSpec, lean_applies
from bench.schedule import Schedule
from services.runtime.heap import freeze_start_up_heap
from services.runtime.retry_after import retry_after_seconds


class _Run:
    def __init__(self, spec: LoadSpec, session: aiohttp.ClientSession, sse: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.http = session
        self.sse = sse
        self.result = LoadResult()
        self.followers: set[asyncio.Task[None]] = set()

    def _count(self, bucket: dict[str, int], key: str) -> None:
        bucket[key] = bucket.get(key, 0) + 1

    async def one(self, scheduled: float) -> None:
        """Send one request; latency from ``scheduled`` (a late send counts), or from the send itself when the
        loop's timer woke early (uvloop's timers have millisecond resolution): an early send must not look faster."""
        scheduled = min(scheduled, time.perf_counter())
        for retries_left in range(self.spec.retry_refused, -1, -1):
            status, body, retry_after = await self._post()
            latency_ms = (time.perf_counter() - scheduled) * 1000
            self.result.latencies_ms.append(latency_ms)
            self.result.latencies_by_status.setdefault(status, []).append(latency_ms)
            self._count(self.result.statuses, status)
            if status != "503" or retry_after is None or retries_left == 0:
                break
            self.result.retried += 1
            await asyncio.sleep(retry_after * random.uniform(1.0, 1.5))  # as the API asks, spread out
            scheduled = time.perf_counter()  # each answer's latency is its own attempt's
        if status in ("200", "202") and body:
            session_id = json.loads(body)["sessionId"]
            self.result.session_ids.append(session_id)
            if self.spec.follow:
                task = asyncio.create_task(self.follow(session_id, scheduled))
                self.followers.add(task)
                task.add_done_callback(self.followers.discard)

    async def _post(self) -> tuple[str, bytes, float | None]:
        """One POST: its status (or the client error's name), body and Retry-After in seconds (None if absent)."""
        try:
            async with self.http.post(self.spec.path, headers=self.spec.headers) as response:
                body = await response.read()
                return str(response.status), body, retry_after_seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__, b"", None

    async def follow(self, session_id: str, posted: float) -> None:
        """Read the session's SSE stream until a terminal or ready status; record POST -> ready."""
        outcome = "closed before ready"
        try:
            async with self.sse.get(f"/api/sessions/{session_id}/events", headers=self.spec.headers) as response:
                if response.status != 200:
                    outcome = f"http {response.status}"
                else:
                    async for line in response.content:
                        if not line.startswith(b"data:"):
                            continue
                        status = json.loads(line[5:])["status"]
                        if status == "ready":
                            self.result.ready_ms.append((time.perf_counter() - posted) * 1000)
                            return
                        if status in ("failed", "expired", "ended"):
                            outcome = status
                            break
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        self._count(self.result.follow_failures, outcome)

    async def closed(self) -> None:
        """``concurrency`` clients back to back, for ``duration_s`` or until ``count`` were sent."""
        stop_at = time.perf_counter() + self.spec.duration_s
        remaining = [self.spec.count]

        async def client() -> None:
            while time.perf_counter() < stop_at:
                if self.spec.count:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                await self.one(time.perf_counter())

        await asyncio.gather(*(client() for _ in range(self.spec.concurrency)))

    async def open(self) -> None:
        """Start request i at ``t0 + i / rate``, never waiting for earlier answers, with at most ``max_in_flight``
        outstanding (a request past the bound starts when a slot frees, late, its lateness in its latency)."""
        slots = asyncio.Semaphore(self.spec.max_in_flight)
        await self._warm_connections(warm_count(self.spec))
        schedule = Schedule(self.spec.rate, self.spec.duration_s)
        pending: set[asyncio.Task[None]] = set()
        async for scheduled in schedule.due_times():
            if slots.locked():
                self.result.slot_waits += 1
            await slots.acquire()
            lag_ms = (time.perf_counter() - scheduled) * 1000
            if lag_ms > 0:
                self.result.max_start_lag_ms = max(self.result.max_start_lag_ms, lag_ms)
            task = asyncio.create_task(self._in_slot(scheduled, slots))
            pending.add(task)
            task.add_done_callback(pending.discard)
        self.result.sending_s = schedule.elapsed_s()
        await asyncio.gather(*pending)

    async def _warm_connections(self, count: int) -> None:
        """Open ``count`` kept-alive connections before the clock starts (one GET of ``/healthz`` each, answered or
        not): a steady load's clients have theirs. Opened within the phase, hundreds of connections at its start (this
        generator's connects and the server's accepts) put the overload phase's first 5% of 503s at p99 14-15 ms
        against ~5 ms after; warmed, it is ~5 ms throughout (docs/performance.md)."""

        async def touch() -> None:
            try:
                async with self.http.get(WARM_PATH) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                pass  # a connection not warmed is opened in the phase, as before

        await asyncio.gather(*(touch() for _ in range(count)))

    async def _in_slot(self, scheduled: float, slots: asyncio.Semaphore) -> None:
        try:
            await self.one(scheduled)
        finally:
            slots.release()


async def run_load(spec: LoadSpec) -> LoadResult:
    """Run ``spec`` in this process's event loop (on the lean open loop where it applies) and return what happened,
    with the generator's CPU time and its loop's lag."""
    cpu0, wall0 = _cpu(), time.perf_counter()
    lags: list[float] = []
    probe = asyncio.create_task(_probe_lag(lags))
    if lean_applies(spec):
        result = await LeanOpenLoop(spec, WARM_PATH).run(warm_count(spec))
        result.wall_s = time.perf_counter() - wall0
    else:
        result = await _run_aiohttp(spec, wall0)
    result.cpu_s = _cpu() - cpu0
    probe.cancel()
    lags.sort()
    if lags:
        result.loop_lag_ms = {q: lags[min(len(lags) - 1, int(f * len(lags)))] for q, f in LAG_QUANTILES.items()}
    return result


async def _run_aiohttp(spec: LoadSpec, wall0: float) -> LoadResult:
    timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
    limit = spec.concurrency if spec.mode == "closed" else spec.max_in_flight
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=IDLE_KEEP_S)  # below the server's
    sse_connector = aiohttp.TCPConnector(limit=0)
    async with (
        aiohttp.ClientSession(spec.base_url, connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession(spec.base_url, connector=sse_connector, timeout=timeout) as sse,
    ):
        run = _Run(spec, session, sse)
        await (run.closed() if spec.mode == "closed" else run.open())
        run.result.wall_s = time.perf_counter() - wall0  # the sending phase: what throughput is measured over
        if run.followers:
            await asyncio.wait(run.followers, timeout=spec.timeout_s)
    return run.result


def warm_count(spec: LoadSpec) -> int:
    """How many connections an open loop opens before its clock starts."""
    return min(spec.max_in_flight, max(WARM_MIN, int(spec.rate * WARM_S)))


LAG_PROBE_S = 0.01
WARM_PATH = "/healthz"
WARM_S = 0.05  # connections for the requests of this long: about what an overloaded API keeps in flight
WARM_MIN = 32
LAG_QUANTILES = {"p50": 0.5, "p99": 0.99, "max": 1.0}


async def _probe_lag(lags: list[float]) -> None:
    """How late a ``LAG_PROBE_S`` timer fires in this loop (ms), until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_PROBE_S
        await asyncio.sleep(LAG_PROBE_S)
        lags.append(max(0.0, loop.time() - due) * 1000)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Read a LoadSpec as JSON on stdin, write the LoadResult as JSON on stdout."""
    spec = LoadSpec(**json.load(sys.stdin))
    freeze_start_up_heap()  # its own collector's pauses would be counted as the server's latency
    try:
        import uvloop

        result = uvloop.run(run_load(spec))
    except ImportError:
        result = asyncio.run(run_load(spec))
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
