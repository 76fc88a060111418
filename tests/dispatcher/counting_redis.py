"""A real Redis client that counts the commands it sends: what the round-trip tests assert on."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


class CountingRedis(Redis):
    """The real client, counting the commands it sends (a script call is one)."""

    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Count, then send as the real client does."""
        self.sent += 1
        return await super().execute_command(*args, **options)
