"""A redis-py connection that sends without a task per command.

redis-py sends every command through ``asyncio.wait_for(...)`` when a socket timeout is set (it always is here:
:data:`~services.runtime.broker.CONNECTION_OPTIONS`), and on Python 3.11 ``wait_for`` wraps the send in a new task:
a task, a timer and an extra loop turn per command, for a write that almost never waits (the socket takes it at
once). :class:`DirectSendConnection` writes directly and waits, under the same timeout, only when the transport's
buffer is over its high-water mark (the peer is not reading). Reads keep redis-py's own timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class DirectSendConnection(Connection):
    """:class:`redis.asyncio.Connection` whose sends skip ``wait_for`` (same errors, same timeout)."""

    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        """Write ``command``; wait (at most the socket timeout) only while the peer does not read."""
        writer = self._writer
        if not self.is_connected or writer is None or not self.socket_timeout:
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else command
        try:
            writer.writelines(chunks)
            if writer.transport.get_write_buffer_size() > 0:  # not all taken at once: drain, bounded
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
            else:
                await writer.drain()  # waits for nothing: raises, as redis-py's drain does, if the connection is lost
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            # as redis-py: a write cut short (a cancellation) leaves the connection in an unknown state
            await self.disconnect(nowait=True)
            raise
