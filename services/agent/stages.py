"""Timed, deadline-bound pipeline stages: each records its duration and logs how it ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.runtime import tracing


class StageFailed(Exception):
    """A readiness stage did not complete; ``stage`` and ``reason`` go into ``agent.failed``."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


class StageClock:
    """Runs stages one after another, keeping per-stage timings in milliseconds."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.timings_ms: dict[str, float] = {}
        self.current = "start"
        self._started = time.perf_counter()

    def elapsed_ms(self) -> float:
        """Milliseconds since the pipeline started."""
        return round((time.perf_counter() - self._started) * 1000.0, 3)

    @asynccontextmanager
    async def stage(self, name: str, deadline: float | None, *, timeout_reason: str = "") -> AsyncIterator[None]:
        """Run the body as stage ``name`` within ``deadline`` seconds (None: no deadline of its own).

        Any exception leaves as :class:`StageFailed` naming this stage; cancellation passes through.
        """
        self.current = name
        started = time.perf_counter()
        try:
            with tracing.span(f"agent.stage {name}"):
                async with asyncio.timeout(deadline):
                    yield
        except StageFailed:
            raise
        except TimeoutError as exc:
            within = f" within {deadline:g} s" if deadline is not None else ""
            reason = timeout_reason or f"stage {name!r} did not finish{within}"
            raise StageFailed(name, reason) from exc
        except Exception as exc:
            raise StageFailed(name, f"{type(exc).__name__}: {exc}") from exc
        ms = round((time.perf_counter() - started) * 1000.0, 3)
        self.timings_ms[name] = ms
        self.log.debug("stage_done", stage=name, ms=ms)  # info: all of them at once in agent_ready/agent_failed
