"""Retire the dispatcher's consumer group on streams it no longer reads, without breaking older replicas.

Why retire: a group nobody reads holds back its stream's trimming (services.runtime.trimming keeps whatever every
group still needs). Why not at once: during a rolling deploy, replicas of the previous version still read that
group. Destroying it under them fails their next read with NOGROUP: FastStream stops their reader and claimer,
their supervisor (``run_app``) re-creates the group from id 0 and they handle the whole stream again; and the
group they re-created (as does any older replica of any service starting: each creates every group of its
contracts) would then stay for good, since retirement ran only at start-up.

So a group is destroyed only when none of its consumers has been seen for ``idle_s`` (longer than a deploy), and
the check repeats every ``every_s``: old replicas keep reading until they are gone, and the group goes afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetirementPolicy:
    """Which group to retire from which streams, after how long without a consumer, how often to look."""

    streams: tuple[str, ...]
    group: str
    idle_s: float
    every_s: float


async def retire_idle_group(redis: Redis, stream: str, group: str, idle_s: float) -> bool:
    """Destroy ``group`` on ``stream`` if none of its consumers was seen in the last ``idle_s``; True if destroyed.

    A consumer's ``idle`` is the time since its last read attempt on Redis >= 7.2 (since its last delivery on
    older servers, where an old replica on a silent stream looks idle: it then re-reads the stream once, as before).
    A group without consumers was never read, so nothing pending is lost with it (an older replica that created
    it at start-up and reads it a moment later takes the NOGROUP path once: re-created, read from 0).
    """
    try:
        consumers = await redis.xinfo_consumers(stream, group)
    except ResponseError:  # no such stream or group: nothing to retire
        return False
    grace_ms = idle_s * 1000
    if any(int(consumer["idle"]) < grace_ms for consumer in consumers):
        return False  # an older replica still reads it: look again later
    # Between this look and the destroy a consumer idle past the grace would have to wake up: a replica that is
    # alive reads every polling interval, so one idle this long is gone.
    if not await redis.xgroup_destroy(stream, group):
        return False
    log.info("consumer_group_retired", stream=stream, group=group, consumers=len(consumers), idle_s=idle_s)
    return True


async def retire_once(redis: Redis, policy: RetirementPolicy) -> list[str]:
    """One look at every stream of ``policy``; the streams whose group was destroyed."""
    return [s for s in policy.streams if await retire_idle_group(redis, s, policy.group, policy.idle_s)]


async def retire_forever(redis: Redis, policy: RetirementPolicy) -> None:
    """:func:`retire_once` now and every ``every_s`` until cancelled (an older replica of any service may create
    the group again at its start-up); a failed look is logged and tried again next time."""
    while True:
        try:
            await retire_once(redis, policy)
        except Exception as exc:  # noqa: BLE001 -- a Redis hiccup must not end retirement for good
            log.warning("consumer_group_retirement_failed", group=policy.group, error=repr(exc))
        await asyncio.sleep(policy.every_s)
