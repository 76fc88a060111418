"""What happens to a batch once read: decoded once per entry, handed to the batch handler, then acked, counted as
failed or dead-lettered per message (the guarantees are described in :mod:`services.runtime.batch`).

A batch whose handler fails with a non-transient error is retried message by message, so one poison message is
isolated (counted, in the end dead-lettered) while the rest of its batch is handled and acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.message import StreamMessage
from faststream.redis import RedisBroker
from pydantic import TypeAdapter
from redis.asyncio import Redis

from services.runtime import tracing
from services.runtime.dead_letters import FailureLedger, dead_letter
from services.runtime.delivery import DeliveryPolicy, StreamPlace, entry_body, first_parameter_type, is_transient
from services.runtime.leases import BatchLease

log = structlog.get_logger(__name__)
_TOO_OFTEN = "delivered too often without finishing: its consumer crashed or hung each time"

BatchHandler = Callable[[list[Any]], Awaitable[Any]]
"""A handler of a batch: takes the events (in stream order) and applies them all, or raises."""


def item_adapter(handler: BatchHandler) -> TypeAdapter[Any]:
    """A validator for one item of the handler's first parameter (``list[Model]`` or ``Sequence[Model]``)."""
    whole = first_parameter_type(handler)
    args = typing.get_args(whole)
    if not args:
        raise TypeError(f"a batch handler's first parameter must be a list of events, not {whole!r}")
    return TypeAdapter(args[0])


@dataclass
class _Message:
    """One entry of a batch: its stream, its id, its fields (kept for a dead letter), its event once decoded."""

    stream: str
    id: str
    fields: dict[bytes, bytes]
    event: Any = None


def _by_stream(messages: Sequence[_Message]) -> dict[str, list[_Message]]:
    """The messages of each stream, in batch order."""
    found: dict[str, list[_Message]] = {}
    for m in messages:
        found.setdefault(m.stream, []).append(m)
    return found


class DeferredAcks:
    """Acks of handled batches (by stream) that go to Redis with the reader's next read, in the same round trip."""

    def __init__(self) -> None:
        self._ids: dict[str, list[str]] = {}

    def add(self, stream: str, ids: Sequence[str]) -> None:
        """Ack ``ids`` of ``stream`` with the next read."""
        self._ids.setdefault(stream, []).extend(ids)

    def take(self) -> dict[str, list[str]]:
        """The acks to send now (they are forgotten: :meth:`add` them back if sending failed)."""
        ids, self._ids = self._ids, {}
        return ids


class BatchGuard:
    """The FastStream handler of one batch subscriber: decodes, calls the batch handler, applies the policy."""

    def __init__(
        self,
        broker: RedisBroker,
        where: StreamPlace,
        handler: BatchHandler,
        policy: DeliveryPolicy,
        *,
        claimed: bool,
        deferred_acks: DeferredAcks | None = None,
    ) -> None:
        """``claimed`` marks the claimer's guard: its messages were delivered before, elsewhere or here. With
        ``deferred_acks`` a handled batch is acked by the reader's next read (dead letters still at once)."""
        self._deferred = deferred_acks
        self._broker = broker
        self._where = where
        self._handler = handler
        self._adapter = item_adapter(handler)
        self._policy = policy
        self._claimed = claimed

    async def handle(self, _decoded: Any = None) -> None:
        """Handle the batch being consumed; ack what was handled or dead-lettered, leave the rest pending.

        A batch read from several streams at once (:mod:`services.runtime.multi_stream`) names each entry's stream
        in its raw message's ``streams``; every other batch is of the subscriber's one stream."""
        message: StreamMessage[Any] = self._broker.context.get_local("message")
        raw = message.raw_message
        await self.handle_read(raw["message_ids"], raw["data"], raw.get("streams"))

    async def handle_read(
        self, ids: Sequence[bytes], data: Sequence[dict[bytes, bytes]], streams: Sequence[str] | None = None
    ) -> None:
        """Handle the entries of one read (``streams``: each entry's stream, default this guard's); ack what was
        handled or dead-lettered, leave the rest pending."""
        streams = streams or [self._where.stream] * len(ids)
        batch = [_Message(s, i.decode(), fields) for s, i, fields in zip(streams, ids, data, strict=True)]
        redis = await self._broker.connect()
        ledgers = _Ledgers(redis, self._where.group)
        distinct = set(streams)
        context = {"stream": next(iter(distinct))} if len(distinct) == 1 else {"streams": len(distinct)}
        with structlog.contextvars.bound_contextvars(**context, batch=len(batch)):
            runnable = await self._decoded(redis, ledgers, batch)
            if not runnable:
                return
            lease = BatchLease(
                redis, self._where.group, self._where.consumer,
                {stream: [m.id for m in ms] for stream, ms in _by_stream(runnable).items()},
                self._policy.lease_every_s, self._policy.handler_timeout_s,
            )  # fmt: skip
            try:
                done = await self._run(redis, ledgers, runnable, lease)
            finally:
                await lease.release()
            if done:
                await self._ack(redis, ledgers, done)

    async def _decoded(self, redis: Redis, ledgers: _Ledgers, batch: list[_Message]) -> list[_Message]:
        """The messages to hand to the handler: decoded, and (when claimed) not delivered too often already."""
        runnable = []
        for m in batch:
            if self._claimed:
                attempts, last_error = await ledgers[m.stream].attempts(m.id)
                if attempts > self._policy.max_deliveries:
                    error = last_error or _TOO_OFTEN
                    await self._dead_letter(redis, m, error, attempts - 1)
                    continue
            try:
                m.event = self._adapter.validate_json(entry_body(m.fields))
            except Exception as exc:  # noqa: BLE001 -- a message that cannot be read is counted like any failure
                await self._failed(redis, ledgers, [m], exc)
                continue
            runnable.append(m)
        return runnable

    async def _run(self, redis: Redis, ledgers: _Ledgers, batch: list[_Message], lease: BatchLease) -> list[_Message]:
        """Run the handler on the batch; after a non-transient failure, on each message alone. Return the handled."""
        try:
            await self._call(batch)
            return batch
        except Exception as exc:  # noqa: BLE001 -- every failure is counted or left pending, never dropped
            if len(batch) == 1 or is_transient(exc):
                await self._failed(redis, ledgers, batch, exc)
                return []
            log.warning("batch_failed_retrying_one_by_one", error=f"{type(exc).__name__}: {exc}"[:500])
        lease.extend(self._policy.handler_timeout_s * len(batch))
        done: list[_Message] = []
        for index, m in enumerate(batch):
            try:
                await self._call([m])
            except Exception as exc:  # noqa: BLE001 -- as above
                if is_transient(exc):  # infrastructure is down: the rest would fail the same way, uncounted
                    await self._failed(redis, ledgers, batch[index:], exc)
                    return done
                await self._failed(redis, ledgers, [m], exc)
                continue
            done.append(m)
        return done

    async def _call(self, batch: list[_Message]) -> None:
        async with asyncio.timeout(self._policy.handler_timeout_s):
            if not tracing.enabled():
                await self._handler([m.event for m in batch])
                return
            with contextlib.ExitStack() as spans:
                stamped: dict[int, Any] = {}
                for stream, ms in _by_stream(batch).items():  # each event's span names its own stream
                    events = spans.enter_context(
                        tracing.consumed_batch(stream, self._where.group, [m.id for m in ms], [m.event for m in ms])
                    )
                    stamped.update(zip(map(id, ms), events, strict=True))
                await self._handler([stamped[id(m)] for m in batch])  # what it publishes carries the event's span

    async def _ack(self, redis: Redis, ledgers: _Ledgers, done: Sequence[_Message]) -> None:
        """One XACK per stream of the batch, in one round trip; a claimed message's failure bookkeeping is dropped
        with it."""
        group = self._where.group
        by_stream = _by_stream(done)
        if self._deferred is not None and not self._claimed:
            for stream, ms in by_stream.items():
                self._deferred.add(stream, [m.id for m in ms])
            return
        if len(by_stream) == 1:
            ((stream, ms),) = by_stream.items()
            await redis.xack(stream, group, *[m.id for m in ms])
        else:
            async with redis.pipeline(transaction=False) as pipe:
                for stream, ms in by_stream.items():
                    pipe.xack(stream, group, *[m.id for m in ms])
                await pipe.execute()
        if self._claimed:
            for m in done:
                await ledgers[m.stream].forget(m.id)

    async def _failed(self, redis: Redis, ledgers: _Ledgers, failed: list[_Message], exc: Exception) -> None:
        """Count the failure of each message (not when transient); dead-letter those at the limit."""
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if is_transient(exc):
            log.warning("delivery_failed_transient", error=error, messages=len(failed),
                        will_retry_after_s=self._policy.claim_idle_s)  # fmt: skip
            for m in failed:
                await ledgers[m.stream].record(m.id, error, transient=True)
            return
        for m in failed:
            ledger = ledgers[m.stream]
            attempts = (await ledger.attempts(m.id))[0] if self._claimed else 1
            with structlog.contextvars.bound_contextvars(stream=m.stream, stream_message_id=m.id):
                if attempts >= self._policy.max_deliveries:
                    log.error("delivery_failed_dead_lettered", error=error, attempts=attempts)
                    await self._dead_letter(redis, m, error, attempts)
                    continue
                log.warning("delivery_failed", error=error, attempts=attempts,
                            max_deliveries=self._policy.max_deliveries)  # fmt: skip
                await ledger.record(m.id, error, transient=False)

    async def _dead_letter(self, redis: Redis, m: _Message, error: str, attempts: int) -> None:
        where = self._where
        dead_id = await dead_letter(
            redis, m.stream, where.group, m.id, m.fields,
            error=error, attempts=attempts, consumer=where.consumer,
        )  # fmt: skip
        log.error("message_dead_lettered", dead_letter_id=dead_id, error=error, attempts=attempts,
                  stream=m.stream, stream_message_id=m.id)  # fmt: skip


class _Ledgers(dict[str, FailureLedger]):
    """The failure ledger of each stream of a batch, made when first needed."""

    def __init__(self, redis: Redis, group: str) -> None:
        super().__init__()
        self._redis, self._group = redis, group

    def __missing__(self, stream: str) -> FailureLedger:
        ledger = self[stream] = FailureLedger(self._redis, stream, self._group)
        return ledger
