"""One batch read over several streams of a group: one XREADGROUP, one handler call, one transaction per wake-up.

A consumer of many streams (the session store reads nine) with one batch subscriber per stream wakes once per
stream with a new entry: under a steady trickle each batch holds about one event, and the per-batch work (the read,
the handler's transaction, the ack, the logs) is paid per event. :func:`subscribe_streams_batch` reads all the
streams with one XREADGROUP (it takes several keys for one group), so what arrived on any of them is one batch; and
``linger_ms`` lets a read that came back small wait that long for more before the batch is handled; ``rest_ms``
instead lets the read *after* a small batch wait that long first (a lone event is handled at once, what follows it
gathers meanwhile: one read per batch, not two).

The guarantees are :mod:`services.runtime.batch`'s, per message and per stream: each entry is acked on its own
stream (in the round trip of the reader's next read: one fewer per batch), a poison entry is isolated (one by one
after a failed batch), counted and dead-lettered to its stream's ``:dead``; each stream keeps its own claimer
(XAUTOCLAIM) for what a dead replica held. Entries are handed over in id order (ids are Redis's clock, the same
for every stream), so each stream keeps its order; handlers must take events of different streams in any order, as
they must anyway (a claimer may deliver an old one later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from faststream import AckPolicy
from faststream.redis import RedisBroker
from faststream.redis.subscriber.usecases.stream_subscriber import (
    ReadCallable,
    ReadResponse,
    StreamBatchSubscriber,
)
from redis.exceptions import RedisError

from services.runtime.batch import not_decoded, raw_batch, subscribe_claimer
from services.runtime.batch_guard import BatchGuard, BatchHandler, DeferredAcks
from services.runtime.delivery import DeliveryPolicy, StreamPlace
from services.runtime.streams import FlatStreamSub


class MultiStreamSub(FlatStreamSub):
    """A batch ``StreamSub`` over ``streams`` (its ``name`` is the first): read with one XREADGROUP, each stream up
    to ``max_records``; a read that returned fewer than that waits ``linger_ms`` and takes what came meanwhile, and
    the read after it first waits ``rest_ms``."""

    def __init__(
        self,
        streams: Sequence[str],
        *,
        group: str,
        consumer: str,
        polling_ms: int,
        max_records: int,
        linger_ms: int,
        rest_ms: int = 0,
    ) -> None:
        """As ``StreamSub(streams[0], group=..., consumer=..., batch=True, ...)``, for every stream of ``streams``."""
        if not streams:
            raise ValueError("a multi-stream subscription needs at least one stream")
        super().__init__(
            streams[0], group=group, consumer=consumer, batch=True, polling_interval=polling_ms, max_records=max_records
        )
        self.streams = tuple(streams)
        self.linger_ms = linger_ms
        self.rest_ms = rest_ms
        self.rest_first = False  # the last read brought a small batch: the next one waits rest_ms first
        self.acks = DeferredAcks()
        self.guard: BatchGuard | None = None  # what handles each read (set by subscribe_streams_batch)
        self.reading = False  # a read is on its way (or blocked): acks added now wait for the read after it

    async def drain(self, timeout_s: float | None) -> None:
        """At shutdown, once reading stopped: wait (at most ``timeout_s``, the broker's graceful timeout) for what the
        subscription still handles (nothing here: a batch is handled before the next read)."""


class MultiStreamBatchSubscriber(StreamBatchSubscriber):
    """FastStream's batch stream subscriber reading every stream of its :class:`MultiStreamSub` at once; the batch
    it consumes names each entry's stream (raw message key ``streams``) for :class:`BatchGuard`."""

    __slots__ = ()

    def _multi(self) -> MultiStreamSub:
        sub = self._stream_sub
        if not isinstance(sub, MultiStreamSub):
            raise TypeError("a MultiStreamBatchSubscriber reads a MultiStreamSub")
        return sub

    async def _xreadgroup(self, *, count: int | None, block: int | None, noack: bool = False) -> ReadResponse:
        sub = self._multi()
        if sub.rest_first:
            sub.rest_first = False
            await asyncio.sleep(sub.rest_ms / 1000)  # after a small batch: let the next one gather, one read for it
        response = await self._read(sub, count, block, noack)
        if sub.linger_ms > 0 and response and count and _size(response) < count:
            await asyncio.sleep(sub.linger_ms / 1000)  # a small batch: let more arrive, one handling for them all
            response = (*response, *await self._read(sub, count, None, noack))
        # a full batch (a backlog) is followed at once; an empty read (blocked until its timeout) too
        sub.rest_first = sub.rest_ms > 0 and 0 < _size(response) < (count or 0)
        return response

    async def _read(self, sub: MultiStreamSub, count: int | None, block: int | None, noack: bool) -> ReadResponse:
        """XREADGROUP over every stream, preceded in the same round trip by the XACKs of the batches handled since
        the last read (they are sent before the read blocks, so no ack waits for new messages)."""
        group, consumer = cast("str", sub.group), cast("str", sub.consumer)  # set: a MultiStreamSub has both
        acks = sub.acks.take()
        sub.reading = True
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for stream, ids in acks.items():
                    pipe.xack(stream, group, *ids)
                pipe.xreadgroup(group, consumer, dict.fromkeys(sub.streams, ">"), count=count, block=block, noack=noack)
                *_, response = await pipe.execute()
        except BaseException:
            for stream, ids in acks.items():  # not known to be acked: again with the next read
                sub.acks.add(stream, ids)
            raise
        finally:
            sub.reading = False
        return cast("ReadResponse", response or ())

    async def stop(self) -> None:
        """Stop reading (in-flight batches finish), then send the acks still waiting for a read (best effort: an
        entry not acked is handled again after its claim, which handlers absorb)."""
        await super().stop()
        sub = self._multi()
        await sub.drain(self._outer_config.graceful_timeout)
        acks = sub.acks.take()
        if acks:
            with contextlib.suppress(RedisError, OSError):
                async with self._client.pipeline(transaction=False) as pipe:
                    for stream, ids in acks.items():
                        pipe.xack(stream, cast("str", sub.group), *ids)
                    await pipe.execute()

    async def _get_msgs(self, read: ReadCallable) -> None:
        entries = [
            (_order(message_id), message_id, fields, stream_name)
            for stream_name, messages in await read(self.last_id)
            for message_id, fields, *_ in messages
        ]
        if not entries:
            return
        entries.sort(key=lambda entry: entry[0])
        guard = self._multi().guard
        if guard is None:
            raise RuntimeError("a multi-stream subscription without its guard")
        # straight to the guard: FastStream's consume path (context, middlewares, parser, decoder) would only hand
        # it the same entries, at a cost per read
        ids, data = [message_id for _, message_id, _, _ in entries], [fields for _, _, fields, _ in entries]
        with self.lock:  # as FastStream's consume does: a graceful stop waits for the batch in hand
            await guard.handle_read(ids, data, [_text(stream) for _, _, _, stream in entries])


async def never_called(_message: Any = None) -> None:
    """FastStream starts a subscriber only with a handler; these readers hand their entries to their guards."""
    raise RuntimeError("a reader of this module hands its entries to its guard")


def _size(response: ReadResponse) -> int:
    return sum(len(messages) for _, messages in response)


def _order(message_id: bytes) -> tuple[int, int]:
    """A stream entry id as a sortable pair (milliseconds, sequence)."""
    ms, _, seq = message_id.partition(b"-")
    return int(ms), int(seq or 0)


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def subscribe_streams_batch(
    broker: RedisBroker,
    streams: Sequence[str],
    *,
    group: str,
    consumer: str,
    handler: BatchHandler,
    max_records: int = 100,
    linger_ms: int = 0,
    policy: DeliveryPolicy | None = None,
    rest_ms: int = 0,
) -> None:
    """Register ``handler`` (its first parameter is ``list[Model]``, a union for several streams) on all
    ``streams`` for ``group``: one reader for them all (batches span streams, up to ``max_records`` of each),
    one claimer per stream. Otherwise as :func:`~services.runtime.batch.subscribe_batch`."""
    policy = policy if policy is not None else DeliveryPolicy()
    if linger_ms * 4 > policy.claim_idle_ms:  # a lingering read holds its entries unleased: keep it far from a claim
        raise ValueError(f"linger_ms {linger_ms} must be at most a quarter of claim_idle_s ({policy.claim_idle_s} s)")
    if rest_ms * 4 > policy.claim_idle_ms:  # a resting reader holds its last batch's acks back: far from a claim too
        raise ValueError(f"rest_ms {rest_ms} must be at most a quarter of claim_idle_s ({policy.claim_idle_s} s)")
    sub = MultiStreamSub(
        streams, group=group, consumer=consumer, polling_ms=policy.polling_ms, max_records=max_records,
        linger_ms=linger_ms, rest_ms=rest_ms,
    )  # fmt: skip
    place = StreamPlace(streams[0], group, consumer)
    guard = BatchGuard(broker, place, handler, policy, claimed=False, deferred_acks=sub.acks)
    subscriber = broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=raw_batch, decoder=not_decoded)
    # FastStream builds the subscriber from the StreamSub; only its read differs, so it becomes the multi-stream
    # kind in place (same slots, same state).
    subscriber.__class__ = MultiStreamBatchSubscriber
    sub.guard = guard
    subscriber(never_called)
    for stream in streams:
        subscribe_claimer(broker, StreamPlace(stream, group, consumer), handler, policy)
