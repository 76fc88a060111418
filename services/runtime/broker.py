"""The one way a service builds its FastStream Redis broker: lean per-message handling.

Every subscriber here is a :class:`~services.runtime.delivery.DeliveryGuard`, which decodes and
validates the message itself, so FastStream's dependency injection is off (``apply_types=False``:
it resolved the message through a thread-pool hop on every delivery), and its two log lines per
message go to DEBUG (our handlers log what matters, with the session's ids).
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.redis import RedisBroker

MAX_CONNECTIONS = 1024
"""Connections of the broker's pool. Every in-flight handler (up to ``max_workers`` for the reader and for the
claimer of each stream) may hold two at once (its command and its lease renewal), plus one blocking read per
subscriber; redis-py's default of 100 is below what one dispatcher replica can have in flight after a backlog,
and an exhausted pool fails commands (MaxConnectionsError) instead of waiting."""


CONNECTION_OPTIONS: dict[str, Any] = {
    # no command of ours waits longer (blocking reads: DELIVERY_POLLING_MS, 5 s, at most 8 s): a dead peer errors
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
    "health_check_interval": 15,  # a connection idle this long is PINGed first: one left over a restart is renewed
}
"""Options of every service's Redis connections (broker and plain clients): no read waits forever."""


def new_broker(redis_url: str, **options: Any) -> RedisBroker:
    """A broker for ``redis_url``; ``options`` go to :class:`RedisBroker` (e.g. ``graceful_timeout``)."""
    options = {**CONNECTION_OPTIONS, **options}
    options.setdefault("max_connections", MAX_CONNECTIONS)
    options.setdefault("apply_types", False)
    options.setdefault("log_level", logging.DEBUG)
    return RedisBroker(redis_url, **options)
