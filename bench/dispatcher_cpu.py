"""``python -m bench.dispatcher_cpu``: the dispatcher's CPU per session, alone, as the pipeline drives it.

Starts embedded Redis, the LiveKit simulator and the real ``python -m services.dispatcher`` process, then plays N
sessions' messages the way the API, the session store and the agent would: ``session.requested`` and the ``pending``
status change; once a session is dispatched, ``agent.joined`` (the dispatcher no longer reads it: the change to
``agent_joined`` disarms its watchdog) and the changes to ``dispatched``, ``agent_joined`` and ``ready``; a moment later
``ended``. It waits (bounded) until every session was dispatched once and cleaned up (its
room gone) and the dispatcher's group consumed every message, then reports the dispatcher's CPU seconds (psutil) per
session (and the system part), its idle CPU, Redis commands per session (INFO commandstats: a pipelined command counts
as one, so these do not show round trips), its read and write system calls per session (each Redis round trip, HTTP
call or log line writes once: the round trips), Redis connections opened, LiveKit calls per session (the simulator's
counters) and TCP connections it opened to LiveKit. ``--py-spy FILE`` records a raw py-spy profile meanwhile.
Paced: ``--rate 10`` plays sessions as the pipeline delivers them in the benchmark's sustained phase (batches of about
one event); ``--sessions 0 --idle-s 60`` measures the idle dispatcher only (CPU and Redis commands per second).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from redis.asyncio import Redis

from bench.profiling import require_py_spy
from contracts.events import AgentJoined, SessionDispatched, SessionRequested, SessionStatusChanged
from contracts.streams import SESSION_DISPATCHED, SUBSCRIPTIONS, Groups
from devstack.readiness import wait_for_tcp
from devstack.server_process import free_tcp_port
from devstack.servers import redis_server
from services.runtime.publishing import BrokerPublisher

AGENT_NAME = "agentready-bench"
LIVE_CHANGES = (("pending", "dispatched"), ("dispatched", "agent_joined"), ("agent_joined", "ready"))
IDLE_SETTLE_S = 3.0  # after start-up, before the idle measurement
DISPATCHER_ENV = {  # as the benchmark's stack runs it (devstack.profiles.BENCH)
    "DEV_MODE": "true",
    "LIVEKIT_AGENT_NAME": AGENT_NAME,
    "DISPATCH_JOIN_TIMEOUT_S": "10",
    "DISPATCH_MAX_ATTEMPTS": "5",
    "DISPATCH_MAX_WAITING": "50",
    "LOG_JSON": "true",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


def cpu_s(process: psutil.Process) -> float:
    """User plus system CPU seconds of ``process`` so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


def syscalls(process: psutil.Process) -> tuple[int, int]:
    """Read and write system calls of ``process`` so far (each Redis round trip or HTTP call writes once)."""
    io = process.io_counters()
    return int(io.read_count), int(io.write_count)


def system_s(process: psutil.Process) -> float:
    """System (kernel) CPU seconds of ``process`` so far: mostly its socket writes and reads."""
    return float(process.cpu_times().system)


async def connections_received(redis: Redis) -> int:
    """Connections Redis accepted so far (every client's)."""
    return int((await redis.info("stats"))["total_connections_received"])


@contextlib.contextmanager
def child(argv: list[str], log: Path, env: dict[str, str], cwd: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log``, stopped (SIGTERM, then SIGKILL) on exit."""
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    try:
        yield popen
    finally:
        popen.terminate()
        try:
            popen.wait(15)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)


async def commandstats(redis: Redis) -> dict[str, int]:
    """Calls per Redis command so far."""
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()}


async def sim_counters(url: str) -> dict[str, int]:
    """The simulator's request and room counters."""
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{url}/sim/state")).json()
    counters: dict[str, int] = body["counters"]
    return counters | {"open_rooms": len(body["rooms"])}


async def dispatched_ids(redis: Redis, after: str) -> tuple[list[SessionDispatched], str]:
    """``session.dispatched`` events after stream id ``after`` (blocks up to 200 ms)."""
    found: list[SessionDispatched] = []
    answer: Any = await redis.xread({SESSION_DISPATCHED: after}, block=200, count=500)
    for _, entries in answer:
        for entry_id, fields in entries:
            data, _ = BinaryMessageFormatV1.parse(fields[b"__data__"])
            found.append(SessionDispatched.model_validate_json(data))
            after = entry_id.decode()
    return found, after


async def consumed(redis: Redis) -> bool:
    """The dispatcher's group read and acked everything on each of its streams."""
    for stream in SUBSCRIPTIONS[Groups.DISPATCHER]:
        if not await redis.exists(stream):
            continue
        last = (await redis.xinfo_stream(stream))["last-generated-id"]
        groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
        group = groups.get(Groups.DISPATCHER)
        if (
            group is None
            or group["last-delivered-id"] != last
            or (await redis.xpending(stream, Groups.DISPATCHER))["pending"]
        ):
            return False
    return True


def change(session_id: str, correlation_id: str, before: str | None, after: str) -> SessionStatusChanged:
    """A status change as the session store announces it."""
    return SessionStatusChanged(
        session_id=session_id, correlation_id=correlation_id, org_id="bench", from_status=before, to_status=after
    )


async def feed(
    publish: Any, redis: Redis, sessions: int, rate: float, end_after_s: float, deadline_s: float
) -> collections.Counter[str]:
    """Play every session's messages; return how often each session was dispatched."""
    dispatched: collections.Counter[str] = collections.Counter()
    correlation = {f"b{uuid.uuid4().hex[:20]}": uuid.uuid4().hex for _ in range(sessions)}
    ends: list[tuple[float, str]] = []
    after = "0"
    stop = time.monotonic() + deadline_s

    async def request_all() -> None:
        for number, (session_id, cid) in enumerate(correlation.items()):
            due = started + number / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await publish(
                SessionRequested(
                    session_id=session_id,
                    correlation_id=cid,
                    org_id="bench",
                    flow_id="bench-flow",
                    room_name=f"session-{session_id}",
                    greeting="Hello",
                    ready_deadline=datetime.now(UTC) + timedelta(seconds=120),
                )
            )
            await publish(change(session_id, cid, None, "pending"))

    started = time.monotonic()
    requests = asyncio.create_task(request_all())
    try:
        while time.monotonic() < stop and (len(dispatched) < sessions or ends):
            found, after = await dispatched_ids(redis, after)
            for event in found:
                dispatched[event.session_id] += 1
                if dispatched[event.session_id] > 1:
                    continue
                sid, cid = event.session_id, event.correlation_id
                await publish(AgentJoined(session_id=sid, correlation_id=cid, room_name=event.room_name, job_id="j"))
                for before, to in LIVE_CHANGES:
                    await publish(change(sid, cid, before, to))
                ends.append((time.monotonic() + end_after_s, sid))
            now = time.monotonic()
            while ends and ends[0][0] <= now:
                _, sid = ends.pop(0)
                await publish(change(sid, correlation[sid], "ready", "ended"))
    finally:
        requests.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await requests
    return dispatched


async def wait_for(what: str, check: Any, deadline_s: float) -> None:
    """Poll ``check`` every 100 ms until it holds; raise after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while not await check():
        if time.monotonic() > end:
            raise TimeoutError(f"not within {deadline_s} s: {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def stack(workdir: Path, code_dir: str | None) -> AsyncIterator[tuple[str, str, psutil.Process]]:
    """Redis, the simulator and the dispatcher; yield (redis url, simulator url, dispatcher process)."""
    with redis_server() as redis:
        sim_port = free_tcp_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        env = {**os.environ, "REDIS_URL": redis.url}
        sim_argv = [sys.executable, "-m", "devstack.livekit_sim", "--port", str(sim_port), "--no-auto-create"]
        sim_argv += ["--fixed-worker-load", "0", "--empty-timeout", "20", "--log-level", "WARNING"]
        with child(sim_argv, workdir / "livekit_sim.log", env):
            await wait_for_tcp("127.0.0.1", sim_port, deadline_s=30)
            dispatcher_env = {**env, **DISPATCHER_ENV, "LIVEKIT_URL": sim_url}
            argv = [sys.executable, "-m", "services.dispatcher"]
            with child(argv, workdir / "dispatcher.log", dispatcher_env, code_dir) as dispatcher:
                yield redis.url, sim_url, psutil.Process(dispatcher.pid)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the stack, feed it, and return the numbers."""
    workdir = Path(args.workdir)
    async with stack(workdir, args.code_dir or None) as (redis_url, sim_url, process):
        redis = Redis.from_url(redis_url)
        broker = RedisBroker(redis_url)
        await broker.connect()
        publish = BrokerPublisher(broker).publish
        log = workdir / "dispatcher.log"
        await wait_for("the dispatcher started", lambda: _logged(log, "service_running"), 60)
        await asyncio.sleep(IDLE_SETTLE_S)  # its first looks and sweeps (connections, script loads) are start-up
        idle_before, idle_from = await commandstats(redis), cpu_s(process)
        await asyncio.sleep(args.idle_s)
        idle = (cpu_s(process) - idle_from) / args.idle_s
        idle_commands = _per(await commandstats(redis), idle_before, args.idle_s)
        idle_figures = {"idle_cpu_ms_per_s": round(idle * 1000, 2), "idle_redis_commands_per_s": idle_commands}
        if args.sessions == 0:  # idle only
            await broker.stop()
            await redis.aclose()
            return idle_figures | {"idle_s": args.idle_s, "logs": str(workdir)}
        spy = _py_spy(process.pid, args.py_spy, args.py_spy_rate) if args.py_spy else None
        commands_before, cpu_before, started = await commandstats(redis), cpu_s(process), time.monotonic()
        system_before, connections_before = system_s(process), await connections_received(redis)
        io_before = syscalls(process)
        peers: set[int] = set()
        sampler = asyncio.create_task(_sample_connections(process, int(sim_url.rsplit(":", 1)[1]), peers))
        dispatched = await feed(publish, redis, args.sessions, args.rate, args.end_after_s, args.deadline_s)

        async def settled() -> bool:
            return await consumed(redis) and (await sim_counters(sim_url))["open_rooms"] == 0

        await wait_for("every message consumed and every room removed", settled, args.deadline_s)
        cpu, elapsed = cpu_s(process) - cpu_before, time.monotonic() - started
        system, commands_after = system_s(process) - system_before, await commandstats(redis)
        connections = await connections_received(redis) - connections_before
        io_after = syscalls(process)
        sampler.cancel()
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        counters = await sim_counters(sim_url)
        await broker.stop()
        await redis.aclose()
    n = args.sessions
    commands = _per(commands_after, commands_before, n)
    return {
        "sessions": n,
        "dispatched_once": sum(1 for count in dispatched.values() if count == 1),
        "dispatched_more": sum(1 for count in dispatched.values() if count > 1),
        "cpu_ms_per_session": round(cpu * 1000 / n, 2),
        "system_cpu_ms_per_session": round(system * 1000 / n, 2),
        **idle_figures,  # the idle Redis commands include the bench's own INFO calls
        "cpu_ms_per_session_less_idle": round((cpu - idle * elapsed) * 1000 / n, 2),
        "elapsed_s": round(elapsed, 1),
        "redis_commands_per_session": round(sum(commands.values()), 1),
        "redis_commands": commands,
        "read_syscalls_per_session": round((io_after[0] - io_before[0]) / n, 2),
        "write_syscalls_per_session": round((io_after[1] - io_before[1]) / n, 2),  # round trips: Redis and LiveKit
        "redis_connections_opened": connections,  # the dispatcher's, and the few the bench's publisher adds
        "livekit_calls_per_session": {
            k.removeprefix("twirp_requests."): round(v / n, 2) for k, v in counters.items() if k.startswith("twirp_")
        },
        "tcp_connections_to_livekit": len(peers),
        "logs": str(workdir),
    }


def _per(after: dict[str, int], before: dict[str, int], divisor: float) -> dict[str, float]:
    """Commands called between two :func:`commandstats`, each divided by ``divisor``, most called first."""
    grown = {k: (v - before.get(k, 0)) / divisor for k, v in after.items() if v > before.get(k, 0)}
    return {k: round(v, 2) for k, v in sorted(grown.items(), key=lambda kv: -kv[1])}


def _logged(log: Path, text: str) -> Any:
    def found() -> bool:
        return log.exists() and text in log.read_text(errors="replace")

    return asyncio.to_thread(found)


async def _sample_connections(process: psutil.Process, port: int, seen: set[int]) -> None:
    """Collect the local ports of the dispatcher's connections to LiveKit (each one a TCP connect)."""
    while True:
        for conn in process.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == port:
                seen.add(conn.laddr.port)
        await asyncio.sleep(0.05)


def _py_spy(pid: int, out: str, rate: int = 200) -> subprocess.Popen[bytes]:
    return subprocess.Popen([require_py_spy(), "record", "-f", "raw", "-r", str(rate), "-o", out, "--pid", str(pid)])


def main() -> None:
    """Parse the options, measure, print the numbers as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.dispatcher_cpu", description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000, help="0: measure the idle dispatcher only")
    parser.add_argument("--rate", type=float, default=200.0, help="session requests per second")
    parser.add_argument("--end-after-s", type=float, default=0.5, help="a ready session ends this long after")
    parser.add_argument("--deadline-s", type=float, default=180.0)
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle CPU measured this long before feeding")
    parser.add_argument("--py-spy", default="", help="record a raw py-spy profile into this file")
    parser.add_argument("--py-spy-rate", type=int, default=200, help="py-spy's samples per second")
    parser.add_argument("--workdir", default="")
    parser.add_argument("--code-dir", default="", help="run the dispatcher of this checkout (e.g. a previous commit)")
    args = parser.parse_args()
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="dispatcher-cpu-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
