"""At-least-once handling of one stream message: lease while working, count failures, dead-letter poison.

A handler that raises leaves its message pending (NACK); the claimer (XAUTOCLAIM) of some replica
retries it once it has been idle ``claim_idle_s``. Failures caused by infrastructure that is down
(Redis, PostgreSQL, the network) do not count toward the limit: those messages wait for it to return.
Any other failure does; on the ``max_deliveries``-th the message goes to ``<stream>:dead`` with its
error and is acked. A message delivered more often than that without ever finishing (its consumer
crashed or hung each time) is dead-lettered when claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
import structlog
from faststream.message import StreamMessage
from faststream.redis import RedisBroker
from faststream.redis.parser import BinaryMessageFormatV1
from pydantic import Field, TypeAdapter
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from services.runtime import tracing
from services.runtime.broker import CONNECTION_OPTIONS
from services.runtime.dead_letters import FailureLedger, dead_letter
from services.runtime.leases import BatchLease

log = structlog.get_logger(__name__)
_DATA = b"__data__"  # the field of FastStream's envelope
# A blocking read must return before the connection's socket timeout would call it dead.
_POLLING_MAX_MS = int(CONNECTION_OPTIONS["socket_timeout"] * 1000) - 2000

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and the builtin TimeoutError
    asyncio.TimeoutError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.LockError,  # another replica holds the resource: try again later, not a poison message
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
)


class DeliveryPolicy(BaseSettings):
    """Redelivery bounds, from ``DELIVERY_*`` variables (read when a subscriber is built, never at import)."""

    model_config = SettingsConfigDict(env_prefix="DELIVERY_", env_file=None, extra="ignore", frozen=True)

    max_deliveries: int = Field(default=5, ge=1, description="failed deliveries before a message is dead-lettered")
    claim_idle_s: float = Field(default=30.0, gt=0, description="idle time after which another consumer takes over")
    polling_ms: int = Field(
        default=5000,
        ge=10,
        le=_POLLING_MAX_MS,
        description="how long one read blocks (it returns as soon as a message arrives: a longer block adds no "
        "latency, only fewer empty reads) and the claimer's least pause; below the Redis socket timeout",
    )
    handler_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="a handler still running after this is cancelled; its message is retried like after an outage "
        "(without the deadline, a hung handler would keep renewing its lease and its message would never move)",
    )

    @property
    def claim_idle_ms(self) -> int:
        """``claim_idle_s`` in milliseconds, as XAUTOCLAIM wants it."""
        return max(1, int(self.claim_idle_s * 1000))

    @property
    def claim_every_ms(self) -> int:
        """How long a claimer that found nothing waits before it looks again: ``polling_ms``, or a tenth of
        ``claim_idle_s`` when that is longer (a message becomes claimable only after ``claim_idle_s`` anyway; every
        stream's claimer polling each second was most of an idle consumer's CPU). So a message left by a crashed
        consumer is claimed within ``claim_idle_s`` plus this (defaults: 30 + 5 s)."""
        return max(self.polling_ms, self.claim_idle_ms // 10)

    @property
    def lease_every_s(self) -> float:
        """How often a message still being handled has its idle time reset, so no claimer takes it."""
        return self.claim_idle_s / 3


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says infrastructure is unreachable, not that the message is bad."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, _TRANSIENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def entry_body(fields: dict[bytes, bytes]) -> bytes:
    """The event's JSON from FastStream's envelope (an entry without one is read as its plain fields)."""
    raw = fields.get(_DATA)
    if raw is None:
        raw = json.dumps({k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}).encode()
    body, _ = BinaryMessageFormatV1.parse(raw)
    return body


def first_parameter_type(handler: Callable[..., Awaitable[Any]]) -> Any:
    """The annotation of the handler's first parameter (extras such as a discriminator kept)."""
    first = next(iter(inspect.signature(handler).parameters))
    # A handler whose dependencies a composition root bound with functools.partial is read through to its function.
    hints = typing.get_type_hints(
        handler.func if isinstance(handler, functools.partial) else handler, include_extras=True
    )
    return hints[first]


def event_adapter(handler: Callable[..., Awaitable[Any]]) -> TypeAdapter[Any]:
    """A validator for the type of the handler's first parameter (a model or an annotated union)."""
    return TypeAdapter(first_parameter_type(handler))


@contextlib.asynccontextmanager
async def _lease(
    redis: Redis, where: StreamPlace, message_id: str, every_s: float, for_at_most_s: float
) -> AsyncIterator[None]:
    """Keep resetting the message's idle time while the block runs (XCLAIM JUSTID: no delivery counted).

    The renewal stops when the block ends, and in any case after ``for_at_most_s``: a renewal that outlived
    its handler would otherwise hide the message from every claimer forever. A timer, not a task per message
    (:class:`~services.runtime.leases.BatchLease` of one message): a message handled within ``every_s`` (nearly
    all) costs one timer.
    """
    lease = BatchLease(redis, where.group, where.consumer, {where.stream: [message_id]}, every_s, for_at_most_s)
    try:
        yield
    finally:
        await lease.release()


@dataclass(frozen=True)
class StreamPlace:
    """Which stream, group and consumer a subscriber reads as."""

    stream: str
    group: str
    consumer: str


class DeliveryGuard:
    """The FastStream handler of one subscriber: decodes, calls the plain handler, applies the policy."""

    def __init__(
        self,
        broker: RedisBroker,
        where: StreamPlace,
        handler: Callable[[Any], Awaitable[Any]],
        policy: DeliveryPolicy,
        *,
        claimed: bool,
    ) -> None:
        """``claimed`` marks the claimer's guard: its messages were delivered before, elsewhere or here."""
        self._broker = broker
        self._where = where
        self._handler = handler
        self._adapter = event_adapter(handler)
        self._policy = policy
        self._claimed = claimed

    async def handle(self, _decoded: Any = None) -> None:
        """Handle the message being consumed; return to ack it, raise to leave it pending for a claimer.

        The message comes from the broker's context, not through dependency injection (which costs a
        thread-pool hop per message); FastStream's own decoding, if any, is ignored.
        """
        message: StreamMessage[Any] = self._broker.context.get_local("message")
        message_id = message.raw_message["message_ids"][0].decode()
        await self.handle_entry(message_id, message.raw_message["data"], message.body)

    async def handle_entry(self, message_id: str, fields: dict[bytes, bytes], body: bytes | None = None) -> None:
        """Handle one stream entry (``body``: its event's JSON, else read from ``fields``); return to ack it, raise to
        leave it pending for a claimer (the failure counted, or not when transient)."""
        redis = await self._broker.connect()
        ledger = FailureLedger(redis, self._where.stream, self._where.group)
        attempts, last_error = (await ledger.attempts(message_id)) if self._claimed else (1, None)
        with structlog.contextvars.bound_contextvars(stream=self._where.stream, stream_message_id=message_id):
            if attempts > self._policy.max_deliveries:
                error = last_error or "delivered too often without finishing: its consumer crashed or hung each time"
                await self._dead_letter(redis, message_id, fields, error, attempts - 1)
                return
            try:
                async with (
                    _lease(redis, self._where, message_id, self._policy.lease_every_s, self._policy.handler_timeout_s),
                    asyncio.timeout(self._policy.handler_timeout_s),
                ):
                    event = self._adapter.validate_json(body if body is not None else entry_body(fields))
                    with tracing.consumed(self._where.stream, self._where.group, message_id, event):
                        await self._handler(event)  # what it publishes carries this span's context
            except Exception as exc:  # noqa: BLE001 -- every failure is counted or re-raised, never dropped
                await self._failed(ledger, redis, message_id, fields, exc, attempts)
                return
            if self._claimed:
                await ledger.forget(message_id)

    async def ack(self, message_id: str) -> None:
        """Ack a handled message of this guard's stream."""
        redis = await self._broker.connect()
        await redis.xack(self._where.stream, self._where.group, message_id)

    async def _failed(
        self,
        ledger: FailureLedger,
        redis: Redis,
        message_id: str,
        fields: dict[bytes, bytes],
        exc: Exception,
        attempts: int,
    ) -> None:
        """Re-raise (message stays pending) unless this was the last allowed attempt."""
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if is_transient(exc):
            log.warning("delivery_failed_transient", error=error, will_retry_after_s=self._policy.claim_idle_s)
            await ledger.record(message_id, error, transient=True)
            raise exc
        if attempts >= self._policy.max_deliveries:
            log.error("delivery_failed_dead_lettered", error=error, attempts=attempts)
            await self._dead_letter(redis, message_id, fields, error, attempts)
            return
        log.warning("delivery_failed", error=error, attempts=attempts, max_deliveries=self._policy.max_deliveries)
        await ledger.record(message_id, error, transient=False)
        raise exc

    async def _dead_letter(
        self, redis: Redis, message_id: str, fields: dict[bytes, bytes], error: str, attempts: int
    ) -> None:
        where = self._where
        dead_id = await dead_letter(
            redis, where.stream, where.group, message_id, fields,
            error=error, attempts=attempts, consumer=where.consumer,
        )  # fmt: skip
        log.error("message_dead_lettered", dead_letter_id=dead_id, error=error, attempts=attempts)
