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
    for claimed in (False, True):
        guard = DeliveryGuard(broker, where, handler, policy, claimed=claimed)
        sub = FlatStreamSub(
            stream,
            group=group,
            consumer=consumer,
            polling_interval=policy.claim_every_ms if claimed else policy.polling_ms,
            # read no more than can be worked on soon: a read message waiting in memory ages toward a claim
            max_records=None if claimed else max_workers,
            min_idle_time=policy.claim_idle_ms if claimed else None,
        )
        if max_workers > 1:
            broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR, max_workers=max_workers)(guard.handle)
        else:
            broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR)(guard.handle)
