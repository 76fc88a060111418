"""Failure bookkeeping per message, dead-letter streams (``<stream>:dead``) and their replay.

A dead letter keeps the original entry's fields untouched and adds ``dead:*`` fields (the group
that gave up, the original id, the error, the attempts), so replay can restore it byte for byte.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from contracts.keys import delivery_failures_key
from contracts.streams import dead_letter_stream

DEAD_PREFIX = b"dead:"


def entries(raw: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XRANGE's answer, typed as it is on a client without ``decode_responses``."""
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", raw or [])


def _fields(message_id: str) -> tuple[str, str, str]:
    return f"{message_id}:failed", f"{message_id}:transient", f"{message_id}:error"


class FailureLedger:
    """How often a group's message failed, and why; best effort (Redis may be what is failing)."""

    def __init__(self, redis: Redis, stream: str, group: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._key = delivery_failures_key(stream, group)

    async def attempts(self, message_id: str) -> tuple[int, str | None]:
        """Deliveries that counted (XPENDING's count minus transient failures), and the last error."""
        _, transient_field, error_field = _fields(message_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xpending_range(self._stream, self._group, min=message_id, max=message_id, count=1)
            pipe.hget(self._key, transient_field)
            pipe.hget(self._key, error_field)
            pending, transient, error = await pipe.execute()
        delivered = int(pending[0]["times_delivered"]) if pending else 1
        counted = max(1, delivered - int(transient or 0))
        return counted, error.decode(errors="replace") if error else None

    async def record(self, message_id: str, error: str, *, transient: bool) -> None:
        """Count one failure of ``message_id`` and remember its error."""
        failed_field, transient_field, error_field = _fields(message_id)
        with contextlib.suppress(redis_errors.RedisError):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(self._key, transient_field if transient else failed_field, 1)
                pipe.hset(self._key, error_field, error)
                await pipe.execute()

    async def forget(self, message_id: str) -> None:
        """Drop the bookkeeping of a message that was finally handled."""
        with contextlib.suppress(redis_errors.RedisError):
            await self._redis.hdel(self._key, *_fields(message_id))


async def dead_letter(
    redis: Redis,
    stream: str,
    group: str,
    message_id: str,
    fields: Mapping[bytes, bytes],
    *,
    error: str,
    attempts: int,
    consumer: str,
) -> str:
    """Copy the entry to ``<stream>:dead`` and ack it for ``group``, in one transaction; return the new id."""
    entry: dict[bytes, bytes | str] = {k: v for k, v in fields.items() if not k.startswith(DEAD_PREFIX)}
    entry.update(
        {
            b"dead:stream": stream,
            b"dead:group": group,
            b"dead:id": message_id,
            b"dead:error": error,
            b"dead:attempts": str(attempts),
            b"dead:consumer": consumer,
            b"dead:at": datetime.now(UTC).isoformat(),
        }
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(dead_letter_stream(stream), entry)  # type: ignore[arg-type]
        pipe.xack(stream, group, message_id)
        pipe.hdel(delivery_failures_key(stream, group), *_fields(message_id))
        dead_id, _, _ = await pipe.execute()
    return str(dead_id.decode() if isinstance(dead_id, bytes) else dead_id)


@dataclass(frozen=True)
class Replayed:
    """One dead letter put back on its stream."""

    dead_id: str
    original_id: str
    new_id: str
    group: str


async def replay_dead(
    redis: Redis, stream: str, *, limit: int | None = None, group: str | None = None
) -> list[Replayed]:
    """Put dead letters of ``stream`` back on it (oldest first) and delete them from the dead-letter stream.

    The new entry reaches every group of the stream again, which idempotent handlers absorb.
    ``group`` replays only the letters that group gave up on.
    """
    dead = dead_letter_stream(stream)
    done: list[Replayed] = []
    cursor = "-"
    while limit is None or len(done) < limit:
        batch = entries(await redis.xrange(dead, min=cursor, max="+", count=100))
        if not batch:
            break
        for dead_id, fields in batch:
            if limit is not None and len(done) >= limit:
                break
            owner = fields.get(b"dead:group", b"").decode()
            if group is not None and owner != group:
                continue
            original = {k: v for k, v in fields.items() if not k.startswith(DEAD_PREFIX)}
            async with redis.pipeline(transaction=True) as pipe:
                pipe.xadd(stream, original)  # type: ignore[arg-type]  # bytes field names are fine
                pipe.xdel(dead, dead_id)
                new_id, _ = await pipe.execute()
            done.append(
                Replayed(
                    dead_id.decode(),
                    fields.get(b"dead:id", b"").decode(),
                    new_id.decode() if isinstance(new_id, bytes) else str(new_id),
                    owner,
                )
            )
        cursor = "(" + batch[-1][0].decode()
    return done
