"""At-least-once handling of stream messages in batches: one read, one handler call, one XACK per batch.

``subscribe_batch`` is :func:`~services.runtime.consuming.subscribe` for handlers that take a list of events (in
stream order) and can apply them together, e.g. in one database transaction. The guarantees are those of
:mod:`services.runtime.delivery`, per message: a claimer (XAUTOCLAIM) takes what a dead replica held; failures are
counted per message and a message is dead-lettered on its ``max_deliveries``-th counted failure; failures of
infrastructure that is down are not counted. What changes is the cost: one lease and one deadline per batch (no
task unless the batch runs long), no failure-ledger look-up for a message never delivered before, one XACK.

A batch whose handler fails with a non-transient error is retried message by message, so one poison message is
isolated (counted, in the end dead-lettered) while the rest of its batch is handled and acked.

This module registers the subscribers (reader and claimer); what happens to a batch once read is
:class:`~services.runtime.batch_guard.BatchGuard`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.redis import RedisBroker
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage

from services.runtime.batch_guard import BatchGuard, BatchHandler
from services.runtime.delivery import DeliveryPolicy, StreamPlace
from services.runtime.streams import FlatStreamSub


def subscribe_batch(
    broker: RedisBroker,
    stream: str,
    *,
    group: str,
    consumer: str,
    handler: BatchHandler,
    max_records: int = 100,
    policy: DeliveryPolicy | None = None,
) -> None:
    """Register ``handler`` (its first parameter is ``list[Model]``) on ``stream`` for ``group``, in batches.

    The reader takes up to ``max_records`` new messages per call (XREADGROUP COUNT); the claimer takes over
    messages idle longer than ``claim_idle_s``, one at a time. Acks are explicit (MANUAL): the handled and the
    dead-lettered messages of a batch are acked, a failed one stays pending for a claimer. Handlers must be
    idempotent: delivery is at least once.
    """
    policy = policy if policy is not None else DeliveryPolicy()
    where = StreamPlace(stream, group, consumer)
    guard = BatchGuard(broker, where, handler, policy, claimed=False)
    sub = FlatStreamSub(
        stream, group=group, consumer=consumer, batch=True, polling_interval=policy.polling_ms, max_records=max_records
    )
    broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=raw_batch, decoder=not_decoded)(guard.handle)
    subscribe_claimer(broker, where, handler, policy)


def subscribe_claimer(broker: RedisBroker, where: StreamPlace, handler: BatchHandler, policy: DeliveryPolicy) -> None:
    """Register the claimer of ``where``: it takes over messages idle longer than ``claim_idle_s`` (a dead replica's,
    a failed handler's), one per XAUTOCLAIM, and hands each to ``handler`` as a batch of one."""
    guard = BatchGuard(broker, where, handler, policy, claimed=True)
    sub = FlatStreamSub(
        where.stream,
        group=where.group,
        consumer=where.consumer,
        batch=True,
        polling_interval=policy.claim_every_ms,
        max_records=None,  # FastStream's claimer takes one message per XAUTOCLAIM
        min_idle_time=policy.claim_idle_ms,
    )
    broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=raw_batch, decoder=not_decoded)(guard.handle)


async def raw_batch(
    raw: Mapping[str, Any], _original: Callable[[Mapping[str, Any]], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """The batch as read, undecoded: :class:`BatchGuard` decodes each entry itself (once) and counts, in the end
    dead-letters, one it cannot decode.

    FastStream's batch parser would decode every entry, re-encode the list as one JSON body and decode that again
    for a handler that never reads it; and an entry it cannot decode (not UTF-8) would fail the whole read before
    the guard could count it: the batch would come back on every claim forever.
    """
    first = raw["message_ids"][0].decode() if raw["message_ids"] else None
    return RedisBatchStreamMessage(raw, b"", consumer=FAKE_CONSUMER, group=None, message_id=first, correlation_id=first)


async def not_decoded(_message: StreamMessage[Any], _original: Callable[..., Any]) -> None:
    """No decoding for FastStream to do: the guard reads the raw entries."""
    return None
