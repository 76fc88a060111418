"""CPU per session of one consumer process, the inner loop for the pipeline's cost (issue #21).

``python -m bench.consumer_cpu session_store|webhooks [--sessions 2000] [--rate 0] [--profile FILE]`` starts Redis
and PostgreSQL (env URLs, else embedded), runs the real ``python -m services.<service>`` against them, XADDs the
events of N sessions the way the other services publish them (the session store: six lifecycle events each; the
webhook sender: five status changes), waits (bounded) until each was handled (the session store: every row reached
the stage; the webhook sender: its group read and acked everything), and reads the process's CPU time (psutil):
milliseconds of CPU per session, with the idle cost (empty polls) measured before and shown apart.

``--rate 0`` (default) feeds stage by stage, each stage for all sessions at once (a backlog: large batches);
``--rate R`` starts R sessions a second, each session's events ``--gap-ms`` apart (small batches, as under light
load). ``--trickle`` is the full pipeline's pace (``python -m bench``'s sustained phase makes ~23 sessions ready a
second): 25 sessions a second, each session's events spread over its ~1.5 s (300 ms apart, +-50% jitter), so the
events of many sessions interleave one at a time across the streams. For the session store it also reports how long
after an event was published its status change was announced (entry ids: Redis's clock), the latency a linger adds.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from bench.profiling import require_py_spy
from contracts.endings import EndCode
from contracts.events import (
    AgentJobEnded,
    AgentJoined,
    AgentReady,
    Event,
    SessionDispatched,
    SessionRequested,
    SessionStatusChanged,
    UserPresenceChanged,
)
from contracts.streams import SESSION_STATUS_CHANGED, Groups, stream_for
from devstack.servers import postgres_server, redis_server
from services.runtime.dead_letters import entries

# (how one session's event is made, the column that shows the session store applied it)
Stage = tuple[Callable[[str], Event], str]
STAGES: tuple[Stage, ...] = (
    (
        lambda sid: SessionRequested(
            session_id=sid, org_id="bench", flow_id="f", room_name=f"r-{sid}", greeting="Hi",
            ready_deadline=datetime.now(UTC) + timedelta(hours=1),
        ),
        "requested_at",
    ),
    (lambda sid: SessionDispatched(session_id=sid, room_name=f"r-{sid}", dispatch_id=f"AD_{sid}"), "dispatched_at"),
    (lambda sid: AgentJoined(session_id=sid, room_name=f"r-{sid}", job_id=f"AJ_{sid}"), "agent_joined_at"),
    (
        lambda sid: UserPresenceChanged(
            session_id=sid, room_name=f"r-{sid}", identity="user", present=True, source="agent"
        ),
        "user_joined_at",
    ),
    (lambda sid: AgentReady(session_id=sid, greeting="Hi"), "ready_at"),
    (
        lambda sid: AgentJobEnded(
            session_id=sid, job_id=f"AJ_{sid}", code=EndCode.USER_LEFT, reason="user left", was_ready=True
        ),
        "ended_at",
    ),
)  # fmt: skip


def _changed(before: str | None, after: str) -> Callable[[str], Event]:
    return lambda sid: SessionStatusChanged(session_id=sid, org_id="bench", from_status=before, to_status=after)


# The webhook sender's input: the five status changes of a session's life (no endpoint is registered, as in
# ``python -m bench``: each change is looked up and makes no delivery). Done when its group has read and acked all.
_LIFE = ("pending", "dispatched", "agent_joined", "ready", "ended")
STATUS_STAGES: tuple[Stage, ...] = tuple(
    (_changed(before, after), "") for before, after in zip((None, *_LIFE[:-1]), _LIFE, strict=True)
)
TARGETS: dict[str, tuple[tuple[Stage, ...], str]] = {
    "session_store": (STAGES, Groups.SESSION_STORE),
    "webhooks": (STATUS_STAGES, Groups.WEBHOOKS),
}


async def _publish(broker: RedisBroker, events: list[Event]) -> None:
    """XADD ``events`` as the services do (FastStream's envelope), in pipelines of 500."""
    redis = await broker.connect()
    for start in range(0, len(events), 500):
        async with redis.pipeline(transaction=False) as pipe:
            for event in events[start : start + 500]:
                await broker.publish(
                    event, stream=stream_for(type(event)), correlation_id=event.correlation_id, pipeline=pipe
                )
            await pipe.execute()


async def _count(database_url: str, prefix: str, column: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(f"SELECT count(*) FROM sessions WHERE id LIKE %s AND {column} IS NOT NULL", (prefix,))  # noqa: S608
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _drained(redis: Redis, stream: str, group: str) -> bool:
    """Whether ``group`` has read every entry of ``stream`` and acked it."""
    last = (await redis.xinfo_stream(stream))["last-generated-id"]
    found = [g for g in await redis.xinfo_groups(stream) if g["name"].decode() == group]
    return bool(found) and found[0]["pending"] == 0 and found[0]["last-delivered-id"] == last


@dataclass(frozen=True)
class Feed:
    """Where the events go and how their being handled is seen."""

    broker: RedisBroker
    redis: Redis
    database_url: str
    group: str
    stages: tuple[Stage, ...]
    ids: list[str]

    async def wait(self, stage: Stage, deadline_s: float = 120) -> None:
        """Until every session's event of ``stage`` was applied (its column set), or read and acked."""
        until = time.monotonic() + deadline_s
        make, column = stage
        stream = stream_for(type(make("x")))
        while not await self._done(stream, column):
            if time.monotonic() > until:
                raise TimeoutError(f"{stream} not handled after {deadline_s:g} s")
            await asyncio.sleep(0.05)

    async def _done(self, stream: str, column: str) -> bool:
        if not column:
            return await _drained(self.redis, stream, self.group)
        return await _count(self.database_url, self.ids[0][:8] + "%", column) >= len(self.ids)


async def _feed(feed: Feed, rate: float, gap_ms: float, jitter: float = 0.0) -> None:
    stages, ids = feed.stages, feed.ids
    if rate <= 0:
        for stage in stages:
            await _publish(feed.broker, [stage[0](sid) for sid in ids])
            await feed.wait(stage)
        return
    shake = random.Random(21)
    schedule = sorted(
        (i / rate + offset, k, sid)
        for i, sid in enumerate(ids)
        for k, offset in enumerate(_offsets(len(stages), gap_ms / 1000, jitter, shake))
    )
    started, sent = time.monotonic(), 0
    while sent < len(schedule):
        now = time.monotonic() - started
        due = schedule[sent : bisect.bisect_right(schedule, (now, len(stages), ""), lo=sent)]
        if due:
            await _publish(feed.broker, [stages[k][0](sid) for _, k, sid in due])
            sent += len(due)
        await asyncio.sleep(0.005)
    for stage in stages:
        await feed.wait(stage)


# The status each stage's event moves a session to (the user's presence moves none).
_MOVES = {"requested_at": "pending", "dispatched_at": "dispatched", "agent_joined_at": "agent_joined",
          "ready_at": "ready", "ended_at": "ended"}  # fmt: skip
_SESSION = re.compile(rb'"session_id":"([^"]+)"')
_TO = re.compile(rb'"to_status":"([^"]+)"')


async def _entries(redis: Redis, stream: str) -> list[tuple[bytes, bytes]]:
    """(id, raw fields) of every entry of ``stream``, in pages."""
    found: list[tuple[bytes, bytes]] = []
    start = "-"
    while page := entries(await redis.xrange(stream, min=start, max="+", count=5000)):
        found.extend((entry_id, b"".join(fields.values())) for entry_id, fields in page)
        start = "(" + page[-1][0].decode()
    return found


def _ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


async def status_latency(redis: Redis, prefix: str) -> list[int]:
    """Milliseconds from each stage's event (of the sessions whose id starts with ``prefix``) to the announcement of
    the status it moved the session to, from the streams' entry ids."""
    published: dict[tuple[bytes, bytes], int] = {}
    for make, column in STAGES:
        if column not in _MOVES:
            continue
        for entry_id, raw in await _entries(redis, stream_for(type(make("x")))):
            found = _SESSION.search(raw)
            if found and found.group(1).startswith(prefix.encode()):
                published[(found.group(1), _MOVES[column].encode())] = _ms(entry_id)
    latencies = []
    for entry_id, raw in await _entries(redis, SESSION_STATUS_CHANGED):
        sid, to = _SESSION.search(raw), _TO.search(raw)
        if sid and to and (sid.group(1), to.group(1)) in published:
            latencies.append(_ms(entry_id) - published[(sid.group(1), to.group(1))])
    return sorted(latencies)


def _percentiles(values: list[int]) -> str:
    if len(values) < 2:
        return "no status changes seen"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"event -> status announced p50/p95/p99/max {cuts[49]:.0f}/{cuts[94]:.0f}/{cuts[98]:.0f}/{values[-1]} ms"


def _offsets(count: int, gap_s: float, jitter: float, shake: random.Random) -> list[float]:
    """When each of a session's ``count`` events is due after its first: ``gap_s`` apart, each gap +-``jitter``."""
    offsets = [0.0]
    for _ in range(count - 1):
        offsets.append(offsets[-1] + gap_s * (1 + jitter * (2 * shake.random() - 1)))
    return offsets


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _tree_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of a server and its children (PostgreSQL's backends), those ended included; None if not ours."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += _cpu_s(child)
    except psutil.NoSuchProcess:
        return None
    return float(total)


@contextlib.contextmanager
def _service(name: str, redis_url: str, database_url: str, log: Path) -> Iterator[psutil.Process]:
    env = {
        **os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url, "DEV_MODE": "true",
        "LOG_LEVEL": "INFO", "LOG_JSON": "true", "CONSUMER_NAME": f"{name}-bench",
    }  # fmt: skip
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env, stdout=out, stderr=out)
    try:
        yield psutil.Process(child.pid)
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


async def _ready(log: Path, deadline_s: float = 60) -> None:
    """Until the service says it runs (its subscribers started)."""
    until = time.monotonic() + deadline_s
    while b"service_running" not in await asyncio.to_thread(log.read_bytes):
        if time.monotonic() > until:
            raise TimeoutError(f"the service did not start within {deadline_s:g} s: see {log}")
        await asyncio.sleep(0.2)


@contextlib.contextmanager
def _profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy samples the service while the block runs (raw collapsed stacks in ``out``), when asked."""
    if out is None:
        yield
        return
    spy = subprocess.Popen([require_py_spy(), "record", "-o", str(out), "-f", "raw", "--pid", str(pid)])
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


async def measure(
    service: str,
    sessions: int,
    rate: float,
    gap_ms: float,
    redis_url: str,
    database_url: str,
    profile: Path | None,
    jitter: float = 0.0,
    postgres_pid: int | None = None,
) -> None:
    """Run the service, feed it, print its CPU per session (and PostgreSQL's, when it runs embedded here)."""
    log = Path(tempfile.gettempdir()) / f"consumer_cpu-{service}.log"
    redis, broker = Redis.from_url(redis_url), RedisBroker(redis_url)
    await broker.connect()
    with _service(service, redis_url, database_url, log) as process:
        await _ready(log)
        await asyncio.sleep(1.0)
        idle0, t0 = _cpu_s(process), time.monotonic()
        await asyncio.sleep(3.0)
        idle_rate = (_cpu_s(process) - idle0) / (time.monotonic() - t0)
        run = uuid.uuid4().hex[:8]
        ids = [f"{run}{i:06d}" for i in range(sessions)]
        cpu0, t0, pg0 = _cpu_s(process), time.monotonic(), _tree_cpu_s(postgres_pid)
        stages, group = TARGETS[service]
        with _profiled(process.pid, profile):
            await _feed(Feed(broker, redis, database_url, group, stages, ids), rate, gap_ms, jitter)
        cpu, wall, pg1 = _cpu_s(process) - cpu0, time.monotonic() - t0, _tree_cpu_s(postgres_pid)
        announced = await redis.xlen(SESSION_STATUS_CHANGED)
        latency = await status_latency(redis, run) if service == "session_store" else []
    await broker.stop()
    await redis.aclose()
    busy = max(0.0, cpu - idle_rate * wall)
    pace = f"{rate:g}/s, {gap_ms:g} ms apart" + (f" +-{jitter:.0%}" if jitter else "")
    pace = "backlog by stage" if rate <= 0 else pace
    print(
        f"{service}: {sessions} sessions ({pace}) "
        f"in {wall:.1f} s; CPU {cpu * 1000 / sessions:.2f} ms/session "
        f"({busy * 1000 / sessions:.2f} without the idle {idle_rate * 1000:.1f} ms/s); "
        + (f"{announced} status changes announced, {_percentiles(latency)}; " if service == "session_store" else "")
        + (
            f"PostgreSQL CPU {(pg1 - pg0) * 1000 / sessions:.2f} ms/session (the harness's checks included); "
            if pg0 is not None and pg1 is not None
            else ""
        )
        + f"log: {log}"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, get servers, measure."""
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=sorted(TARGETS))
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=0.0, help="sessions started per second (0: backlog)")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="between one session's events (with --rate)")
    parser.add_argument("--trickle", action="store_true", help="the pipeline's pace: --rate 25 --gap-ms 300, jittered")
    parser.add_argument("--profile", type=Path, help="py-spy's raw stacks of the service while it is fed, to this file")
    args = parser.parse_args(argv)
    rate, gap_ms, jitter = (25.0, 300.0, 0.5) if args.trickle else (args.rate, args.gap_ms, 0.0)
    with redis_server() as redis, postgres_server() as postgres:
        asyncio.run(
            measure(
                args.service,
                args.sessions,
                rate,
                gap_ms,
                redis.url,
                postgres.url,
                args.profile,
                jitter=jitter,
                postgres_pid=postgres.pid,
            )
        )


if __name__ == "__main__":
    main()
