"""Each message of a stream handled on its own, without FastStream's per-message path: one XREADGROUP takes what
arrived (up to the free workers), and every entry becomes a task of its own.

:func:`~services.runtime.consuming.subscribe` with ``max_workers`` hands each message through FastStream's consume
path (parse, decode, middlewares, context, its ack middleware's XACK): most of what a cheap handler costs. Here the
reader starts a task per entry and reads again at once, so the messages stay independent: a slow one (held by a
pacer or a retry) holds neither the others' acks nor the reads, up to ``max_workers`` in flight. Each task is the
:class:`~services.runtime.delivery.DeliveryGuard` of one entry, as before: its lease, its deadline, its trace span,
its failures counted, a poison message dead-lettered. A handled entry is acked in the round trip of the reader's next
read (the XACKs go before its XREADGROUP): when the reader waits for new messages, that is when the next one arrives
or its block (``polling_ms``) ends, so an ack waits at most that long, far below ``claim_idle_s`` (a policy whose
``polling_ms`` is not at most a quarter of it acks a handled entry at once while the reader waits).
The claimer is :func:`~services.runtime.consuming.subscribe_claimer`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.redis import RedisBroker
from faststream.redis.subscriber.usecases.stream_subscriber import ReadCallable, ReadResponse

from services.runtime.batch import not_decoded, raw_batch
from services.runtime.consuming import subscribe_claimer
from services.runtime.delivery import DeliveryGuard, DeliveryPolicy, StreamPlace
from services.runtime.multi_stream import MultiStreamBatchSubscriber, MultiStreamSub, never_called

log = structlog.get_logger(__name__)


class ConcurrentStreamSub(MultiStreamSub):
    """A :class:`MultiStreamSub` of one stream whose entries are handled by ``guard``, up to ``workers`` at once."""

    def __init__(self, where: StreamPlace, guard: DeliveryGuard, workers: int, policy: DeliveryPolicy) -> None:
        """Read ``where`` for ``guard``: one XREADGROUP for up to the free workers."""
        polling_ms = policy.polling_ms
        if workers < 1:
            raise ValueError("a concurrent subscription needs at least one worker")
        super().__init__(
            [where.stream], group=where.group, consumer=where.consumer, polling_ms=polling_ms, max_records=workers,
            linger_ms=0,
        )  # fmt: skip
        self.where, self.entry_guard, self.free = where, guard, workers
        self.tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()
        # an ack waiting for the next read waits at most polling_ms: far enough from a claim?
        self.ack_with_next_read = polling_ms * 4 <= policy.claim_idle_ms

    async def free_workers(self) -> int:
        """Wait until a worker is free; the number free."""
        while self.free < 1:
            self._freed.clear()
            await self._freed.wait()
        return self.free

    def start(self, message_id: str, fields: dict[bytes, bytes]) -> None:
        """Handle one entry in a task of its own."""
        self.free -= 1
        task = asyncio.create_task(self._handle(message_id, fields), name=f"{self.where.stream} {message_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, message_id: str, fields: dict[bytes, bytes]) -> None:
        try:
            try:
                await self.entry_guard.handle_entry(message_id, fields)
            except Exception:  # noqa: BLE001 -- counted (or not, when transient) by the guard: left for a claimer
                return
            if self.reading and not self.ack_with_next_read:
                try:
                    await self.entry_guard.ack(message_id)
                except Exception as exc:  # noqa: BLE001 -- not acked: claimed and handled again (handlers absorb it)
                    log.warning("ack_failed", stream=self.where.stream, stream_message_id=message_id, error=str(exc))
            else:
                self.acks.add(self.where.stream, [message_id])
        finally:
            self.free += 1
            self._freed.set()

    async def drain(self, timeout_s: float | None) -> None:
        """At shutdown: let the entries in flight finish within ``timeout_s`` (the broker's graceful timeout; none:
        no wait, as FastStream's own readers), then cancel the rest (left pending: claimed, or released by serve)."""
        if not self.tasks:
            return
        try:
            if timeout_s:
                await asyncio.wait(set(self.tasks), timeout=timeout_s)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)


class ConcurrentStreamSubscriber(MultiStreamBatchSubscriber):
    """The reader of a :class:`ConcurrentStreamSub`: reads what the free workers can take and starts them."""

    __slots__ = ()

    def _concurrent(self) -> ConcurrentStreamSub:
        sub = self._stream_sub
        if not isinstance(sub, ConcurrentStreamSub):
            raise TypeError("a ConcurrentStreamSubscriber reads a ConcurrentStreamSub")
        return sub

    async def _xreadgroup(self, *, count: int | None, block: int | None, noack: bool = False) -> ReadResponse:
        free = await self._concurrent().free_workers()
        return await super()._xreadgroup(count=min(count or free, free), block=block, noack=noack)

    async def _get_msgs(self, read: ReadCallable) -> None:
        sub = self._concurrent()
        for _, messages in await read(self.last_id):
            for message_id, fields, *_ in messages:
                sub.start(message_id.decode(), fields)


def subscribe_concurrent(
    broker: RedisBroker,
    stream: str,
    *,
    group: str,
    consumer: str,
    handler: Callable[..., Awaitable[Any]],
    max_workers: int,
    policy: DeliveryPolicy | None = None,
) -> None:
    """As :func:`~services.runtime.consuming.subscribe` (the same guarantees, per message), the reader without
    FastStream's per-message path."""
    policy = policy if policy is not None else DeliveryPolicy()
    where = StreamPlace(stream, group, consumer)
    sub = ConcurrentStreamSub(where, DeliveryGuard(broker, where, handler, policy, claimed=False), max_workers, policy)
    subscriber = broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=raw_batch, decoder=not_decoded)
    # FastStream builds the subscriber from the StreamSub; only its read differs (as in multi_stream)
    subscriber.__class__ = ConcurrentStreamSubscriber
    subscriber(never_called)
    subscribe_claimer(broker, where, handler, policy, max_workers)
