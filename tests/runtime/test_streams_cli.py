"""``python -m services.runtime.streams_cli``: status table and dead-letter replay, on real Redis."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis
from typer.testing import CliRunner, Result

from contracts.streams import SESSION_REQUESTED, dead_letter_stream
from services.runtime.dead_letters import dead_letter
from services.runtime.streams import ensure_groups
from services.runtime.streams_cli import cli


async def _invoke(args: list[str]) -> Result:
    """Run the CLI in a thread: it starts its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, args, env={"COLUMNS": "200"})


async def test_status_lists_every_stream_and_group(redis_url: str, redis: Redis) -> None:
    await ensure_groups(redis)
    result = await _invoke(["status", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert "session.requested" in result.output and "session_store" in result.output
    assert "dead letters" in result.output


async def test_replay_puts_dead_letters_back_byte_for_byte(redis_url: str, redis: Redis) -> None:
    stream = f"test:replay:{uuid.uuid4().hex[:10]}"
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    original = {b"__data__": b'{"n": 1}', b"extra": b"\xff\x00"}
    entry_id = (await redis.xadd(stream, original)).decode()  # type: ignore[arg-type]
    await redis.xreadgroup("g", "c", {stream: ">"})
    await dead_letter(redis, stream, "g", entry_id, original, error="boom", attempts=3, consumer="c")
    assert (await redis.xpending(stream, "g"))["pending"] == 0
    result = await _invoke(["replay-dead", stream, "--limit", "5", "--redis-url", redis_url])
    assert result.exit_code == 0, result.output
    assert "1 dead letter(s) replayed" in result.output
    entries = await redis.xrange(stream)
    assert entries[-1][1] == original
    assert await redis.xlen(dead_letter_stream(stream)) == 0
    assert SESSION_REQUESTED  # the real streams are what status reports by default
