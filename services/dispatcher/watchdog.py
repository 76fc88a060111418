"""The dispatch watchdog: a dispatched session that sees no ``agent.joined`` in time gets its stale
dispatch replaced, with a growing wait, until its readiness deadline leaves no time for another; then it fails.

Why: the open-source LiveKit server drops a job silently when no worker serves the agent name or every worker is
full (a saturated fleet drops jobs for as long as a burst lasts), and drops the jobs of a worker that dies. A
session is given up by its deadline, never by a count of attempts while its deadline is ahead: a burst that keeps the
fleet busy for minutes must leave its sessions waiting, not fail them. Plain rules here; Redis and LiveKit come in
through the ports.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import structlog

from contracts.datachannel import FAILURE_NO_AGENT
from contracts.events import Event, SessionDispatched, SessionDispatchFailed
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import (
    LiveKitError,
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
    """How long one dispatch may wait for ``agent.joined``, until when a session is dispatched again, how due
    watches are taken.

    The first dispatch waits ``min_join_timeout_s`` (LiveKit's job offer expires after ~3 s, then the job starts and
    says ``agent.joined``); each further one twice the last, capped at ``join_timeout_s`` and varied down by up to
    ``jitter`` (never below the first wait), so the re-dispatches of a burst's dropped jobs thin out and spread
    instead of coming back in waves (the time a joined agent needs to get ready, ``ready_reserve_s``, is kept
    free before the deadline where it can be). A session is dispatched again while an agent it reaches could still join
    before its deadline; one without a known deadline (a record from before deadlines were kept) gets
    ``max_attempts`` dispatches. A job a worker took waits ``started_job_timeout_s`` (at least ``join_timeout_s``)
    from its start before it is taken for lost (its worker died) and replaced: a slow start on a busy fleet must
    not get the room a second agent job.
    """

    join_timeout_s: float = 10.0
    max_attempts: int = 5
    lease_s: float = 60.0
    batch: int = 100
    min_join_timeout_s: float = 5.0
    ready_reserve_s: float = 5.0
    started_job_timeout_s: float = 30.0
    jitter: float = 0.2

    @property
    def shortest_wait_s(self) -> float:
        """The least time a dispatch waits for its agent: a watch armed at ``t`` is due this long after or later."""
        return min(self.min_join_timeout_s, self.join_timeout_s)

    @property
    def started_job_wait_s(self) -> float:
        """How long after a worker took a job its agent may take to say ``agent.joined``."""
        return max(self.started_job_timeout_s, self.join_timeout_s)

    def join_timeout(
        self, attempt: int, now: float, ready_deadline: float, rand: Callable[[], float] = random.random
    ) -> float:
        """How long dispatch number ``attempt`` (1 for the first) waits for its agent, from ``now``: the capped
        backoff, jittered; cut short (never below the shortest wait) where it would end within ``ready_reserve_s``
        of the deadline, so the last re-dispatch still leaves a joining agent time to get ready."""
        floor = self.shortest_wait_s
        backoff = min(self.join_timeout_s, floor * 2.0 ** min(attempt - 1, 30))
        wait = max(floor, backoff * (1 - self.jitter * rand()))
        if ready_deadline > 0:
            wait = min(wait, max(floor, ready_deadline - self.ready_reserve_s - now))
        return wait

    def dispatch_times(self, ready_timeout_s: float) -> list[float]:
        """Seconds after the request at which a session whose agent never joins is dispatched (the first
        dispatch at once, no jitter), for a readiness deadline ``ready_timeout_s`` after the request."""
        times = [0.0]
        while True:
            now = times[-1] + self.join_timeout(len(times), times[-1], ready_timeout_s, rand=lambda: 0.0)
            if not self.may_redispatch(len(times), now, ready_timeout_s):
                return times
            times.append(now)

    def may_redispatch(self, attempts_made: int, now: float, ready_deadline: float) -> bool:
        """Another dispatch while an agent it reaches could still join before the deadline (the shortest wait
        fits), however many were made; without a known deadline, while attempts remain. Otherwise the session
        fails."""
        if ready_deadline <= 0:
            return attempts_made < self.max_attempts
        return now + self.shortest_wait_s <= ready_deadline


def should_redispatch(record: SessionRecord, policy: WatchdogPolicy, now: float | None = None) -> bool:
    """A due watch is dispatched again while another attempt fits before the session's deadline (at ``now``, else
    the current time); otherwise the session fails."""
    return policy.may_redispatch(record.attempt, time.time() if now is None else now, record.ready_deadline)


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
    if not should_redispatch(record, policy, clock()):
        if (await _job_starting(record, rooms, ledger, retry, policy, clock)).starting:
            return None
        await ledger.close(record.session_id)
        reason = give_up_reason(record.attempt, rooms.agent_name)
        log.warning("watchdog_gave_up", attempts=record.attempt, reason=reason)
        return SessionDispatchFailed(**ids, reason=reason, code=FAILURE_NO_AGENT)
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
            job = await _job_starting(record, rooms, ledger, retry, policy, clock)
            if job.starting:
                return None
            # the listing that showed no job starting names our stale dispatches: no second ListDispatch
            replace = partial(rooms.replace_dispatch, record.room_name, record.metadata, job.ours)
            dispatch_id = await with_retries(retry, replace)
    except PermanentLiveKitError as exc:
        await ledger.close(record.session_id)
        log.warning("redispatch_failed", reason=str(exc), permanent=True)
        return SessionDispatchFailed(**ids, reason=f"re-dispatch after no agent joined failed: {exc}")
    except TransientLiveKitError as exc:
        log.warning("redispatch_postponed", reason=str(exc), retry_after_s=policy.lease_s)
        return None
    attempt = record.attempt + 1
    now = clock()
    due = now + policy.join_timeout(attempt, now, record.ready_deadline)
    if not await ledger.rearm(record.session_id, dispatch_id, attempt, due):
        return None  # joined or closed meanwhile; a clean-up under the room lock removes what we made
    log.info("redispatched", room=record.room_name, stale_dispatch_id=record.dispatch_id, dispatch_id=dispatch_id)
    return SessionDispatched(**ids, room_name=record.room_name, dispatch_id=dispatch_id, attempt=attempt)


@dataclass(frozen=True)
class _Job:
    """Whether the session's job is starting (the watch extended), and our dispatches as listed (None: unknown)."""

    starting: bool
    ours: tuple[str, ...] | None = None


async def _job_starting(
    record: SessionRecord,
    rooms: LiveKitRooms,
    ledger: SessionLedger,
    retry: RetryPolicy,
    policy: WatchdogPolicy,
    clock: Callable[[], float],
) -> _Job:
    """A worker took the job but its agent has not said ``agent.joined`` yet (a slow start: a new job process on
    a busy machine): wait until ``started_job_wait_s`` after it took the job instead of killing the job with a
    re-dispatch (which would give the room a second agent job). ``starting`` when the job is starting (the watch
    extended, or the session joined or closed meanwhile), else our dispatches as the same ListDispatch showed them.
    Only a dropped job is re-dispatched at the shorter wait. Best effort: when LiveKit cannot say, the watchdog goes
    on as if no job had started."""
    try:
        state = await with_retries(retry, lambda: rooms.job_state(record.room_name, record.dispatch_id))
    except LiveKitError as exc:
        log.info("watchdog_job_state_unknown", reason=str(exc))
        return _Job(starting=False)
    started = state.started_at
    if started is None or clock() >= started + policy.started_job_wait_s:
        return _Job(starting=False, ours=state.ours)
    wait_until = started + policy.started_job_wait_s
    await ledger.rearm(record.session_id, record.dispatch_id, record.attempt, wait_until)
    log.info("watchdog_waits_for_starting_job", room=record.room_name, job_started_s_ago=round(clock() - started, 2))
    return _Job(starting=True)


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


async def watch_forever(
    scan: Callable[[], Awaitable[int]],
    interval_s: float,
    next_due: Callable[[], Awaitable[float | None]],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Scan when the earliest watch is due, until cancelled: look at the earliest deadline (``next_due``, one cheap
    read), sleep until it but never longer than ``interval_s``, scan once it has come (and look again at once).

    Why this is on time: a watch known at a look is scanned at its deadline; one armed after it is due at least the
    shortest join wait after it, so with ``interval_s`` at most that wait (see :attr:`WatchdogPolicy.shortest_wait_s`)
    the next look comes first. Only a deadline moved closer by another replica (a starting job's extension) may be
    scanned up to ``interval_s`` late. An idle watchdog costs one ZRANGE per ``interval_s``.
    """
    while True:
        wait_s = interval_s
        try:
            earliest = await next_due()
            now = clock()
            if earliest is not None and earliest <= now:
                await scan()  # leases (re-scores) or drops every watch it takes: the next look sees the rest
                continue
            if earliest is not None:
                wait_s = min(interval_s, earliest - now)
        except Exception as exc:  # noqa: BLE001 - a Redis hiccup must not stop the watchdog for good
            log.error("watchdog_scan_failed", error=repr(exc))
        await sleep(wait_s)
