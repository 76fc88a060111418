"""A throw-away consumer on a unique stream: the runtime's subscribe() and serve() on real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from faststream import FastStream
from faststream.redis import RedisBroker
from pydantic import BaseModel

from services.runtime.batch import subscribe_batch
from services.runtime.broker import new_broker
from services.runtime.concurrent_stream import subscribe_concurrent
from services.runtime.consuming import subscribe
from services.runtime.delivery import DeliveryPolicy
from services.runtime.multi_stream import subscribe_streams_batch
from services.runtime.streams import ensure_groups

FAST = DeliveryPolicy(max_deliveries=3, claim_idle_s=0.6, polling_ms=100)


class Job(BaseModel):
    """The test event."""

    n: int


@dataclass
class Probe:
    """A stream, its group, and what the handler saw."""

    stream: str = field(default_factory=lambda: f"test:delivery:{uuid.uuid4().hex[:10]}")
    group: str = "workers"
    calls: list[int] = field(default_factory=list)

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.stream}:dead"


def consumer_app(
    redis_url: str,
    probe: Probe,
    consumer: str,
    behaviour: Callable[[Job], Awaitable[None]],
    *,
    policy: DeliveryPolicy = FAST,
    max_workers: int = 4,
    concurrent: bool = False,
) -> FastStream:
    """A FastStream app whose one handler records the job then runs ``behaviour``; ``concurrent``: read by
    :func:`~services.runtime.concurrent_stream.subscribe_concurrent` instead of ``subscribe``."""
    broker = new_broker(redis_url, graceful_timeout=3.0)  # as the services build theirs

    async def handle(job: Job) -> None:
        probe.calls.append(job.n)
        await behaviour(job)

    (subscribe_concurrent if concurrent else subscribe)(
        broker, probe.stream, group=probe.group, consumer=consumer, handler=handle, max_workers=max_workers,
        policy=policy,
    )  # fmt: skip

    async def start() -> None:
        await ensure_groups(await broker.connect(), {probe.group: (probe.stream,)})

    return FastStream(broker, on_startup=[start])


async def publish(redis_url: str, stream: str, *numbers: int) -> None:
    """Publish jobs the way the services do (through a FastStream broker)."""
    broker = RedisBroker(redis_url)
    await broker.connect()
    try:
        for n in numbers:
            await broker.publish(Job(n=n), stream=stream)
    finally:
        await broker.stop()


@dataclass
class BatchProbe(Probe):
    """A probe whose handler takes batches: each batch it was given, and the jobs of those that succeeded."""

    batches: list[list[int]] = field(default_factory=list)
    done: list[int] = field(default_factory=list)


def _recording(
    probe: BatchProbe, behaviour: Callable[[list[Job]], Awaitable[None]]
) -> Callable[[list[Job]], Awaitable[None]]:
    """A batch handler that records each batch, runs ``behaviour``, then records its jobs done."""

    async def handle(jobs: list[Job]) -> None:
        probe.batches.append([job.n for job in jobs])
        await behaviour(jobs)
        probe.done.extend(job.n for job in jobs)

    return handle


def batch_consumer_app(
    redis_url: str,
    probe: BatchProbe,
    consumer: str,
    behaviour: Callable[[list[Job]], Awaitable[None]],
    *,
    policy: DeliveryPolicy = FAST,
    max_records: int = 10,
) -> FastStream:
    """A FastStream app whose one batch handler records each batch, runs ``behaviour``, then records its jobs done."""
    broker = new_broker(redis_url, graceful_timeout=3.0)
    handle = _recording(probe, behaviour)

    subscribe_batch(
        broker, probe.stream, group=probe.group, consumer=consumer, handler=handle, max_records=max_records,
        policy=policy,
    )  # fmt: skip

    async def start() -> None:
        await ensure_groups(await broker.connect(), {probe.group: (probe.stream,)})

    return FastStream(broker, on_startup=[start])


@dataclass
class MultiProbe(BatchProbe):
    """A batch probe over several streams of one group, read together; ``stream`` is the first of ``streams``."""

    streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.streams = self.streams or tuple(f"{self.stream}:{i}" for i in range(3))
        self.stream = self.streams[0]


def multi_consumer_app(
    redis_url: str,
    probe: MultiProbe,
    consumer: str,
    behaviour: Callable[[list[Job]], Awaitable[None]],
    *,
    policy: DeliveryPolicy = FAST,
    max_records: int = 10,
    linger_ms: int = 0,
    rest_ms: int = 0,
) -> FastStream:
    """As :func:`batch_consumer_app`, with one reader over all of ``probe.streams`` (services/runtime/multi_stream)."""
    broker = new_broker(redis_url, graceful_timeout=3.0)
    handle = _recording(probe, behaviour)

    subscribe_streams_batch(
        broker, probe.streams, group=probe.group, consumer=consumer, handler=handle, max_records=max_records,
        linger_ms=linger_ms, policy=policy, rest_ms=rest_ms,
    )  # fmt: skip

    async def start() -> None:
        await ensure_groups(await broker.connect(), {probe.group: probe.streams})

    return FastStream(broker, on_startup=[start])
