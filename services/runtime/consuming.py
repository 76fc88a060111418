"""How every service subscribes to a stream: a reader and a claimer in its group, explicit acks, a delivery limit.

Per stream a replica runs two FastStream subscribers under its unique consumer name: the *reader*
(XREADGROUP ``>``: new messages) and the *claimer* (XAUTOCLAIM: messages idle longer than
``claim_idle_s``, whoever held them: a replica killed with SIGKILL, or a handler that failed).
Both wrap the plain handler in a :class:`~services.runtime.delivery.DeliveryGuard`. Groups are
created beforehand from id 0 (``ensure_groups``) and re-created by ``run_app`` if Redis loses them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker

from services.runtime.delivery import DeliveryGuard, DeliveryPolicy, StreamPlace
from services.runtime.streams import FlatStreamSub


def subscribe(
    broker: RedisBroker,
    stream: str,
    *,
    group: str,
    consumer: str,
    handler: Callable[..., Awaitable[Any]],
    max_workers: int = 1,
    policy: DeliveryPolicy | None = None,
) -> None:
    """Register ``handler`` (its first parameter's type is the event model) on ``stream`` for ``group``.

    NACK_ON_ERROR: a message whose handler raised stays pending for a claimer to retry, a handled
    (or dead-lettered) one is acked. ``policy`` defaults to ``DeliveryPolicy()`` (``DELIVERY_*`` env).
    Handlers must be idempotent (by message id or natural key): delivery is at least once.
    """
    policy = policy if policy is not None else DeliveryPolicy()
    where = StreamPlace(stream, group, consumer)
    guard = DeliveryGuard(broker, where, handler, policy, claimed=False)
    sub = FlatStreamSub(
        stream,
        group=group,
        consumer=consumer,
        polling_interval=policy.polling_ms,
        max_records=max_workers,  # read no more than can be worked on soon: a read message waiting in memory ages
    )
    _register(broker, sub, guard, max_workers)
    subscribe_claimer(broker, where, handler, policy, max_workers)


def subscribe_claimer(
    broker: RedisBroker,
    where: StreamPlace,
    handler: Callable[..., Awaitable[Any]],
    policy: DeliveryPolicy,
    max_workers: int = 1,
) -> None:
    """Register the claimer of ``where``: one message per XAUTOCLAIM of those idle longer than ``claim_idle_s``,
    handled up to ``max_workers`` at once."""
    guard = DeliveryGuard(broker, where, handler, policy, claimed=True)
    sub = FlatStreamSub(
        where.stream,
        group=where.group,
        consumer=where.consumer,
        polling_interval=policy.claim_every_ms,
        max_records=None,
        min_idle_time=policy.claim_idle_ms,
    )
    _register(broker, sub, guard, max_workers)


def _register(broker: RedisBroker, sub: FlatStreamSub, guard: DeliveryGuard, max_workers: int) -> None:
    if max_workers > 1:
        broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR, max_workers=max_workers)(guard.handle)
    else:
        broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR)(guard.handle)
