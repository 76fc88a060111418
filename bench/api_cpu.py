"""``python -m bench.api_cpu``: the API's and the ceiling's CPU per request, alone, as the benchmark's closed loop
drives them.

Starts embedded Redis and PostgreSQL, the real ``python -m services.api`` (the benchmark's profile, no pipeline) and
the ceiling (``python -m bench.serve ceiling``), creates a flow, then sends each ``--requests`` session POSTs in a
closed loop (bench.loadgen, ``--concurrency``) and reports per request: CPU µs of the server (psutil), of Redis, and
Redis's own time per command (INFO commandstats ``usec``), plus the served rate (wall time: noisy on shared cores).
``--py-spy DIR`` records a raw py-spy profile of each server meanwhile (its CPU then counts in the figures).
``--overload-s N`` then offers the API twice its measured rate for N seconds in an open loop (the benchmark's overload
phase without the rest of the benchmark): each answer class's count and latency percentiles, and the generator's lag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil
from redis.asyncio import Redis

from bench import profiling
from bench.load_spec import ENGINES, LoadSpec
from bench.overload import by_class
from bench.phases import path_for, run_loadgen
from bench.stats import summary
from devstack.profiles import BENCH
from devstack.readiness import wait_for_tcp
from devstack.server_process import free_tcp_port
from devstack.stack import found_servers, start_stack


async def py_spy(pid: int, output: Path) -> asyncio.subprocess.Process:
    """py-spy sampling ``pid`` at 1 kHz into ``output`` (raw collapsed stacks) until SIGINT."""
    exe = profiling.py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed")
    argv = [exe, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw", "--nonblocking", "-o", str(output)]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def command_usec(redis: Redis) -> dict[str, tuple[int, int]]:
    """``(calls, usec)`` per Redis command so far."""
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(s["calls"]), int(s["usec"])) for name, s in info.items()}


async def measure(
    label: str, url: str, headers: dict[str, str], pids: dict[str, int], redis: Redis, args: argparse.Namespace
) -> dict[str, Any]:
    """Send ``args.requests`` POSTs to ``url`` in a closed loop; CPU and Redis time per request."""
    spec = LoadSpec(url, path_for(args.flow_id), "closed", 3600, args.concurrency, count=args.requests, headers=headers)
    warm = replace(spec, count=args.warmup)
    await run_loadgen(warm)
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    commands = await command_usec(redis)
    recording = await py_spy(pids[label], args.py_spy / f"{label}.txt") if args.py_spy else None
    load = await run_loadgen(spec)
    if recording is not None:
        recording.send_signal(signal.SIGINT)  # py-spy writes its output then
        await asyncio.wait_for(recording.wait(), timeout=30)
    after = {name: cpu_s(pid) for name, pid in pids.items()}
    used = {
        name: (calls - commands.get(name, (0, 0))[0], usec - commands.get(name, (0, 0))[1])
        for name, (calls, usec) in (await command_usec(redis)).items()
    }
    n = len(load.latencies_ms)
    ok = sum(count for status, count in load.statuses.items() if status in ("200", "202"))
    return {
        "requests": n,
        "statuses": load.statuses,
        "served_per_s": round(ok / load.wall_s, 1) if load.wall_s else 0.0,
        "cpu_us_per_request": {name: round(1e6 * (after[name] - before[name]) / n, 1) for name in pids},
        "redis_us_per_request": {
            name: {"calls": round(calls / n, 2), "usec": round(usec / n, 1)}
            for name, (calls, usec) in used.items()
            if calls and name != "info"
        },
    }


async def overload(api_url: str, headers: dict[str, str], closed: dict[str, Any], args: argparse.Namespace) -> Any:
    """Twice the closed loop's served rate, open loop, for ``args.overload_s``: answers and latency per class."""
    rate = 2 * closed["served_per_s"]
    spec = LoadSpec(api_url, path_for(args.flow_id), "open", args.overload_s, rate=rate, headers=headers, timeout_s=10)
    load = await run_loadgen(replace(spec, engine=args.engine))
    keep = ("count", "p50", "p90", "p99", "max")
    return {
        "rate": round(rate),
        "latency_ms": {
            answer: {k: round(v, 1) for k, v in summary(latencies).items() if k in keep}
            for answer, latencies in by_class(load.latencies_by_status).items()
        },
        "loadgen_lag_ms": load.loop_lag_ms,
        "loadgen_cpu_us_per_request": round(1e6 * load.cpu_s / max(1, len(load.latencies_ms)), 1),
        "max_start_lag_ms": round(load.max_start_lag_ms, 1),
    }


async def create_flow(api_url: str, headers: dict[str, str]) -> str:
    """Create the flow the requests are for (as bench.stack.create_flow does); return its id."""
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as client:
        flow = {"name": "bench", "greeting": "Hello.", "agentSettings": {"readyTimeoutS": 600}}
        response = await client.post("/api/flows", json=flow)
        response.raise_for_status()
        return str(response.json()["id"])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the servers, measure the ceiling then the API, stop everything."""
    with tempfile.TemporaryDirectory(prefix="api-cpu-") as tmp, found_servers() as (redis_server, postgres):
        async with await start_stack(
            replace(BENCH, log_level="WARNING"),
            redis_url=redis_server.url,
            database_url=postgres.url,
            services=("api",),
            log_path=Path(tmp),
        ) as stack:
            port = free_tcp_port()
            ceiling_pid = await stack.start_child(
                "ceiling", [sys.executable, "-m", "bench.serve", "ceiling", "--port", str(port)]
            )
            await wait_for_tcp("127.0.0.1", port, deadline_s=30)
            assert redis_server.pid is not None
            pids = {"api": stack.pids["api"], "ceiling": ceiling_pid, "redis": redis_server.pid}
            args.flow_id = await create_flow(stack.api_url, stack.headers)
            redis = Redis.from_url(redis_server.url)
            try:
                results = {
                    "ceiling": await measure("ceiling", f"http://127.0.0.1:{port}", stack.headers, pids, redis, args)
                }
                results["api"] = await measure("api", stack.api_url, stack.headers, pids, redis, args)
                if args.overload_s:
                    results["overload"] = await overload(stack.api_url, stack.headers, results["api"], args)
            finally:
                await redis.aclose()
    return results


def main() -> None:
    """Parse the arguments, run, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--py-spy", type=Path, default=None)
    parser.add_argument("--overload-s", type=float, default=0.0, help="then 2x the API's rate for this long")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="the overload's load generator")
    args = parser.parse_args()
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
