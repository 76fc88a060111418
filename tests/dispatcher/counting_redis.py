"""A real Redis client that counts the commands it sends: what the round-trip tests assert on."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline


class CountingRedis(Redis):
    """The real client, counting the commands it sends (a script call is one; a pipeline is one round trip)."""

    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Count, then send as the real client does."""
        self.sent += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        """A real pipeline whose execution counts as one."""
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> list[Any]:
            self.sent += 1
            return await execute(raise_on_error)

        setattr(pipe, "execute", counted)  # noqa: B010 - an instance attribute shadows the method
        return pipe
