"""The delivery loop: claim due deliveries, send each in its own task, record how it went.

Each attempt is bounded (``timeout_s``), at most ``max_in_flight`` run at once per replica and at most
``per_endpoint`` of them to one endpoint, so a slow or dead endpoint holds a few slots for a bounded time and never
the others' deliveries. A new delivery wakes the loop at once, and so does a retry this replica scheduled, when it
falls due; polling ``next_attempt_at`` (every ``poll_interval_s``) finds only what others left due: a replay from the
API, a retry scheduled by a replica that stopped since, a lease that ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from services.webhooks.repository import Attempt, DeliveryRepository, Outcome
from services.webhooks.retries import RetryPolicy

log = structlog.get_logger(__name__)

Send = Callable[[Attempt], Awaitable[Outcome]]


@dataclass(frozen=True)
class LoopLimits:
    """How much one replica sends at once, how long one attempt may take, how often it looks for due retries."""

    timeout_s: float = 10.0
    max_in_flight: int = 128
    per_endpoint: int = 16
    poll_interval_s: float = 5.0
    lease_margin_s: float = 30.0


class DeliveryLoop:
    """Sends due deliveries until cancelled; :meth:`wake` makes it look at once (a delivery was just made)."""

    def __init__(self, repo: DeliveryRepository, send: Send, retry: RetryPolicy, limits: LoopLimits) -> None:
        self._repo = repo
        self._send = send
        self._retry = retry
        self._limits = limits
        self._woken = asyncio.Event()
        self._in_flight: Counter[str] = Counter()  # endpoint id -> attempts running
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()  # wake-ups at the retries this replica scheduled

    def wake(self) -> None:
        """Look for due deliveries now instead of at the next poll."""
        self._woken.set()

    async def run(self) -> None:
        """Claim and send until cancelled; a failed pass (database down) is logged and tried again next poll."""
        try:
            while True:
                self._woken.clear()
                try:
                    await self._pass()
                except Exception as exc:  # noqa: BLE001 -- the loop outlives an outage; the pass is retried
                    log.warning("webhook_pass_failed", error=f"{type(exc).__name__}: {exc}")
                # a full pass may have left more due: look again at once, else wait for a wake-up or the poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self._limits.poll_interval_s)
        finally:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pass(self) -> None:
        free = self._limits.max_in_flight - sum(self._in_flight.values())
        if free <= 0:
            return
        full = [endpoint for endpoint, n in self._in_flight.items() if n >= self._limits.per_endpoint]
        attempts = await self._repo.claim_due(
            free,
            per_endpoint=self._limits.per_endpoint,
            full=full,
            max_attempts=self._retry.max_attempts,
            lease_s=self._limits.timeout_s + self._limits.lease_margin_s,
            busy=dict(self._in_flight),  # a batch of new deliveries must not take an endpoint past its share
        )
        for attempt in attempts:
            self._in_flight[attempt.endpoint_id] += 1
            task = asyncio.create_task(self._attempt(attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if len(attempts) == free:
            self._woken.set()

    async def _attempt(self, attempt: Attempt) -> None:
        try:
            async with asyncio.timeout(self._limits.timeout_s + 1):  # the sender's own bound, should that fail
                outcome = await self._send(attempt)
        except TimeoutError:
            outcome = Outcome(ok=False, error=f"no answer within {self._limits.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 -- a failed attempt like any other: counted, retried
            outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self._in_flight[attempt.endpoint_id] -= 1
            if self._in_flight[attempt.endpoint_id] <= 0:
                del self._in_flight[attempt.endpoint_id]
            self.wake()  # a slot is free: that endpoint's next delivery may go
        retry_in_s = None if outcome.ok else self._retry.delay_after(attempt.attempt)
        bound = structlog.get_logger(__name__).bind(delivery_id=attempt.delivery_id, endpoint_id=attempt.endpoint_id)
        try:
            await self._repo.finish(attempt, outcome, retry_in_s)
        except Exception as exc:  # noqa: BLE001 -- the lease makes it due again: at least once, never lost
            bound.warning("webhook_result_not_recorded", error=f"{type(exc).__name__}: {exc}")
            return
        if retry_in_s is not None:
            self._wake_in(retry_in_s)
        if outcome.ok:
            bound.info("webhook_delivered", attempt=attempt.attempt, status_code=outcome.status_code)
        elif retry_in_s is None:
            bound.error("webhook_dead", attempts=attempt.attempt, error=outcome.error)
        else:
            bound.warning(
                "webhook_retry", attempt=attempt.attempt, retry_in_s=round(retry_in_s, 2), error=outcome.error
            )

    def _wake_in(self, delay_s: float) -> None:
        """Wake the loop when a retry scheduled ``delay_s`` from now is due (it is then claimed like any other)."""

        def fire() -> None:
            self._timers.discard(timer)
            self.wake()

        timer = asyncio.get_running_loop().call_later(delay_s, fire)
        self._timers.add(timer)
