"""Stream set-up shared by every service: consumer names and groups created from id 0 at start-up."""

from __future__ import annotations

import copy
import os
import socket
from typing import Any, Self

from faststream.redis import StreamSub
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from contracts.streams import SUBSCRIPTIONS


def consumer_name(service: str, configured: str | None = None) -> str:
    """Return a consumer name unique per replica: the configured one, else service-host-pid."""
    if configured:
        return configured
    return f"{service}-{socket.gethostname()}-{os.getpid()}"


async def ensure_groups(redis: Redis, subscriptions: dict[str, tuple[str, ...]] = SUBSCRIPTIONS) -> None:
    """Create every stream and consumer group at id 0, so no message published before a consumer
    first started is skipped (FastStream would create groups at ``$``). Existing groups are kept."""
    for group, streams in subscriptions.items():
        for stream in streams:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise


class FlatStreamSub(StreamSub):
    """FastStream's ``StreamSub`` with a cheap copy: FastStream deep-copies the subscription on every read and every
    message (``stream_sub`` adds the broker's prefix to a copy); its fields are strings and numbers, so a shallow
    copy is the same."""

    def __deepcopy__(self, _memo: dict[int, Any]) -> Self:
        """A shallow copy (every field is immutable)."""
        return copy.copy(self)
