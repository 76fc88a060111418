"""Reading outcomes from the system's own stores: session rows in PostgreSQL, counters of the simulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import psycopg


async def status_counts(database_url: str, flow_id: str) -> Counter[str]:
    """Sessions of the flow by status."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT status, count(*) FROM sessions WHERE flow_id = %s GROUP BY status", (flow_id,))
        return Counter({str(status): int(n) for status, n in await cur.fetchall()})


async def statuses_of(database_url: str, session_ids: list[str]) -> Counter[str]:
    """How many of ``session_ids`` are in each status; ``missing`` for those with no row."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT status, count(*) FROM sessions WHERE id = ANY(%s) GROUP BY status", (session_ids,)
        )
        counts = Counter({str(status): int(n) for status, n in await cur.fetchall()})
    counts["missing"] = len(set(session_ids)) - sum(counts.values())
    return counts


async def sim_counters(livekit_url: str) -> dict[str, int]:
    """The simulator's counters (jobs assigned, dropped, ...)."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{livekit_url}/sim/state")
        response.raise_for_status()
        counters: dict[str, int] = response.json()["counters"]
        return counters


SETTLED = ("ready", "ended", "failed", "expired")


async def wait_settled(database_url: str, session_ids: list[str], deadline_s: float) -> float | None:
    """Wait until each of ``session_ids`` is ready or terminal; the seconds that took, None past the deadline."""
    started = time.monotonic()
    while True:
        counts = await statuses_of(database_url, session_ids)
        if sum(counts[s] for s in SETTLED) >= len(set(session_ids)):
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            return None
        await asyncio.sleep(0.5)


async def ready_delays_ms(database_url: str, session_ids: list[str]) -> tuple[list[float], float]:
    """For the sessions that got ready: request -> ready in ms (the API's and the agent's event times), and
    how many became ready per second from the first request to the last ready."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM requested_at), extract(epoch FROM ready_at) FROM sessions "
            "WHERE id = ANY(%s) AND ready_at IS NOT NULL AND requested_at IS NOT NULL",
            (session_ids,),
        )
        rows = [(float(a), float(b)) for a, b in await cur.fetchall()]
    if not rows:
        return [], 0.0
    span = max(b for _, b in rows) - min(a for a, _ in rows)
    return [1000 * (b - a) for a, b in rows], len(rows) / span if span > 0 else 0.0


ENDED = ("ended", "failed", "expired")


async def wait_ended(database_url: str, session_ids: list[str], deadline_s: float) -> float | None:
    """Wait until each of ``session_ids`` reached a terminal status (its whole life done, its ending's work too);
    the seconds that took, None past the deadline."""
    started = time.monotonic()
    while True:
        counts = await statuses_of(database_url, session_ids)
        if sum(counts[s] for s in ENDED) + counts["missing"] >= len(set(session_ids)):
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            return None
        await asyncio.sleep(0.5)


async def ready_epochs(database_url: str, session_ids: list[str]) -> list[float]:
    """When each of ``session_ids`` that got ready did (epoch seconds, the agent's event time)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM ready_at) FROM sessions WHERE id = ANY(%s) AND ready_at IS NOT NULL",
            (session_ids,),
        )
        return [float(ready) for (ready,) in await cur.fetchall()]
