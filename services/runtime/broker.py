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


def new_broker(redis_url: str, **options: Any) -> RedisBroker:
    """A broker for ``redis_url``; ``options`` go to :class:`RedisBroker` (e.g. ``graceful_timeout``)."""
    options.setdefault("apply_types", False)
    options.setdefault("log_level", logging.DEBUG)
    return RedisBroker(redis_url, **options)
