"""The agent's part of the session's trace: one span per job, a child of the dispatcher's span that dispatched it
(the trace context travels in the job metadata), so the stages and the events the job publishes join the session's
one trace. livekit-agents' own ``job_entrypoint`` span starts before the metadata is read: it is linked, not parent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from livekit.agents import JobContext
from opentelemetry.trace import SpanKind

from services.runtime import tracing


def job_traceparent(raw_metadata: str) -> str:
    """The session's trace context from the job metadata, "" when absent or unreadable (a new trace then)."""
    try:
        data = json.loads(raw_metadata or "{}")
    except ValueError:
        return ""
    value = data.get("traceparent") if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


async def traced_job(run: Callable[[JobContext], Awaitable[None]], ctx: JobContext) -> None:
    """Run the job inside its span; export what the job recorded before its process may end (bounded)."""
    if not tracing.enabled():
        await run(ctx)
        return
    attributes = {"livekit.job_id": ctx.job.id, "livekit.room": ctx.job.room.name}
    try:
        with tracing.span(
            "agent.job", parent=job_traceparent(ctx.job.metadata), kind=SpanKind.CONSUMER,
            attributes=attributes, link_current=True,
        ):  # fmt: skip
            await run(ctx)
    finally:
        await asyncio.to_thread(tracing.flush)
