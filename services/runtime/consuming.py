"""How every service subscribes to a stream: its group, a unique consumer name, an explicit ack policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub


def subscribe(
    broker: RedisBroker,
    stream: str,
    *,
    group: str,
    consumer: str,
    handler: Callable[..., Awaitable[Any]],
    max_workers: int = 1,
) -> None:
    """Register ``handler`` on ``stream`` for ``group``.

    NACK_ON_ERROR: a message whose handler raised stays pending (unacked) for a claimer to retry;
    a handled one is acked. Groups are created beforehand from id 0 (see ``ensure_groups``).
    """
    sub = StreamSub(stream, group=group, consumer=consumer, polling_interval=1000)
    if max_workers > 1:
        broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR, max_workers=max_workers)(handler)
    else:
        broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR)(handler)
