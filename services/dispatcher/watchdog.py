"""The dispatch watchdog: a dispatched session that sees no ``agent.joined`` in time gets its stale
dispatch replaced, a bounded number of times, then fails.

Why: the open-source LiveKit server drops a job silently when no worker serves the agent name, and
drops the jobs of a worker that dies. Plain rules here; Redis and LiveKit come in through the ports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from contracts.events import Event, SessionDispatched, SessionDispatchFailed
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import (
    LiveKitRooms,
    PermanentLiveKitError,
    RoomLocks,
    SessionLedger,
    SessionRecord,
    TransientLiveKitError,
)
from services.dispatcher.retries import RetryPolicy, with_retries

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WatchdogPolicy:
    """How long an agent may take to join, how many dispatches a session gets, how due watches are taken."""

    join_timeout_s: float = 30.0
    max_attempts: int = 3
    lease_s: float = 60.0
    batch: int = 100


def should_redispatch(record: SessionRecord, policy: WatchdogPolicy) -> bool:
    """A due watch is dispatched again while attempts remain; after the last one the session fails."""
    return record.attempt < policy.max_attempts


def give_up_reason(attempts: int, agent_name: str) -> str:
    """The failure reason, phrased so that whoever reads it knows what to check."""
    return (
        f"no agent joined after {attempts} dispatch attempts; "
        f"is a worker registered under LIVEKIT_AGENT_NAME={agent_name!r}?"
    )


async def handle_due(
    record: SessionRecord,
    rooms: LiveKitRooms,
    locks: RoomLocks,
    ledger: SessionLedger,
    retry: RetryPolicy,
    policy: WatchdogPolicy,
    clock: Callable[[], float] = time.time,
) -> Event | None:
    """Settle one watch past its deadline; return the event to publish, if any.

    A transient LiveKit failure returns None and leaves the watch leased: it is due again afterwards.
    """
    ids = {"session_id": record.session_id, "correlation_id": record.correlation_id}
    if not should_redispatch(record, policy):
        await ledger.close(record.session_id)
        reason = give_up_reason(record.attempt, rooms.agent_name)
        log.warning("watchdog_gave_up", attempts=record.attempt, reason=reason)
        return SessionDispatchFailed(**ids, reason=reason)
    try:
        async with locks.hold(record.room_name):
            current = await ledger.get(record.session_id)
            if current is None or current.state != DispatchState.WATCHING:
                return None  # an agent joined, or the session ended, while this watch was claimed
            if await with_retries(retry, lambda: rooms.agent_present(record.room_name)):
                # Its agent.joined is late (a lagging consumer): a second agent must not be sent.
                await ledger.mark_joined(record.session_id)
                log.info("watchdog_found_agent", room=record.room_name)
                return None
            dispatch_id = await with_retries(retry, lambda: rooms.replace_dispatch(record.room_name, record.metadata))
    except PermanentLiveKitError as exc:
        await ledger.close(record.session_id)
        log.warning("redispatch_failed", reason=str(exc), permanent=True)
        return SessionDispatchFailed(**ids, reason=f"re-dispatch after no agent joined failed: {exc}")
    except TransientLiveKitError as exc:
        log.warning("redispatch_postponed", reason=str(exc), retry_after_s=policy.lease_s)
        return None
    attempt = record.attempt + 1
    if not await ledger.rearm(record.session_id, dispatch_id, attempt, clock() + policy.join_timeout_s):
        return None  # joined or closed meanwhile; a clean-up under the room lock removes what we made
    log.info("redispatched", room=record.room_name, stale_dispatch_id=record.dispatch_id, dispatch_id=dispatch_id)
    return SessionDispatched(**ids, room_name=record.room_name, dispatch_id=dispatch_id, attempt=attempt)


async def scan_once(
    ledger: SessionLedger,
    settle: Callable[[SessionRecord], Awaitable[None]],
    policy: WatchdogPolicy,
    clock: Callable[[], float] = time.time,
) -> int:
    """Claim the watches that are due and settle them concurrently; return how many were claimed."""
    due = await ledger.claim_due(clock(), policy.lease_s, policy.batch)
    results = await asyncio.gather(*(settle(record) for record in due), return_exceptions=True)
    for record, result in zip(due, results, strict=True):
        if isinstance(result, BaseException):
            log.error("watchdog_settle_failed", session_id=record.session_id, error=repr(result))
    return len(due)


async def watch_forever(scan: Callable[[], Awaitable[int]], interval_s: float) -> None:
    """Scan every ``interval_s`` until cancelled (at once again after a scan that claimed something)."""
    while True:
        try:
            claimed = await scan()
        except Exception as exc:  # noqa: BLE001 - a Redis hiccup must not stop the watchdog for good
            log.error("watchdog_scan_failed", error=repr(exc))
            claimed = 0
        if claimed == 0:
            await asyncio.sleep(interval_s)
