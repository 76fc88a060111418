"""Reading outcomes from the system's own stores: session rows in PostgreSQL, counters of the simulator."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import psycopg

NON_TERMINAL = ("pending", "dispatched", "agent_joined")


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


async def wait_drained(database_url: str, flow_id: str, accepted: int, deadline_s: float) -> float:
    """Wait until every accepted session has a row and none is still on its way; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        counts = await status_counts(database_url, flow_id)
        if sum(counts.values()) >= accepted and not any(counts[s] for s in NON_TERMINAL):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def sim_counters(livekit_url: str) -> dict[str, int]:
    """The simulator's counters (jobs assigned, dropped, ...)."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{livekit_url}/sim/state")
        response.raise_for_status()
        counters: dict[str, int] = response.json()["counters"]
        return counters
