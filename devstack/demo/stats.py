"""The numbers of a demo run: percentiles of each timing, the stage breakdown and failures by reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from devstack.demo.frontend import SessionResult

STAGE_ORDER = (
    "requested→dispatched",
    "dispatched→agent_joined",
    "agent_joined→ready",
    "requested→ready",
)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, linearly interpolated."""
    if not sorted_values:
        raise ValueError("no values")
    rank = (len(sorted_values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


@dataclass(frozen=True)
class Percentiles:
    """p50/p95/p99/max of one timing, in milliseconds, over ``count`` samples."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float | None]) -> Percentiles | None:
        """Percentiles of the values given (None values skipped); None when there are none."""
        values = sorted(s * 1000 for s in seconds if s is not None)
        if not values:
            return None
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99), values[-1])


@dataclass(frozen=True)
class DemoSummary:
    """Everything the final report shows; ``to_json`` is the ``--json`` file."""

    sessions: int
    ready: int
    concurrency: int
    wall_s: float
    backend: str
    timings: dict[str, Percentiles | None]
    stages: dict[str, Percentiles | None]
    failures: dict[str, int]
    failure_examples: dict[str, str] = field(default_factory=dict)
    http_retries: int = 0
    cleanup_errors: int = 0

    @property
    def failed(self) -> int:
        """Sessions that did not become ready."""
        return self.sessions - self.ready

    @property
    def all_ready(self) -> bool:
        """Did every session become ready (and were there any)?"""
        return self.sessions > 0 and self.ready == self.sessions

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (percentiles as dicts, milliseconds)."""
        body = asdict(self)
        body["failed"] = self.failed
        body["sessions_per_s"] = self.sessions / self.wall_s if self.wall_s > 0 else None
        return body


def summarise(results: Sequence[SessionResult], *, concurrency: int, wall_s: float, backend: str) -> DemoSummary:
    """Aggregate the frontends' results (timings over the sessions that reached each point)."""
    ok = [r for r in results if r.ok]
    failures = Counter(r.reason or "unknown" for r in results if not r.ok)
    examples: dict[str, str] = {}
    for result in results:
        if not result.ok and result.reason and result.reason not in examples:
            examples[result.reason] = result.detail or ""
    return DemoSummary(
        sessions=len(results),
        ready=len(ok),
        concurrency=concurrency,
        wall_s=wall_s,
        backend=backend,
        timings={
            "HTTP POST /sessions": Percentiles.of(r.http_s for r in results),
            "join room": Percentiles.of(r.join_s for r in results),
            "time to agent.ready (data channel)": Percentiles.of(r.ready_s for r in ok),
            "time to ready (SSE)": Percentiles.of(r.sse_ready_s for r in ok),
            "SSE after agent.ready": Percentiles.of(_lag(r) for r in ok),
        },
        stages={name: Percentiles.of(r.stages.get(name) for r in ok) for name in STAGE_ORDER},
        failures=dict(failures.most_common()),
        failure_examples=examples,
        http_retries=sum(r.http_retries for r in results),
        cleanup_errors=sum(1 for r in results if r.cleanup_error),
    )


def _lag(result: SessionResult) -> float | None:
    """How much later the event stream said ``ready`` than the data channel (negative: earlier)."""
    if result.sse_ready_s is None or result.ready_s is None:
        return None
    return result.sse_ready_s - result.ready_s
