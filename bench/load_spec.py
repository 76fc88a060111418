"""What the load generator is asked to do and what it reports: the JSON between the benchmark and its generator
process (bench.loadgen, bench.lean_loop)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# A connection idle this long is closed by the loop, before the server's keep-alive timeout closes it (uvicorn's and
# the API's default: 5 s): a request sent just as the server closes its idle connection is lost with it (a
# ServerDisconnectedError the API never saw), the keep-alive race every HTTP client avoids this way.
IDLE_KEEP_S = 4.0


@dataclass
class LoadSpec:
    """What to send."""

    base_url: str
    path: str
    mode: str  # "closed" | "open"
    duration_s: float = 10.0
    concurrency: int = 32
    rate: float = 0.0  # open loop: requests per second
    count: int = 0  # closed loop: stop after this many requests (0: run for duration_s)
    headers: dict[str, str] = field(default_factory=dict)
    follow: bool = False  # follow each created session's SSE stream until ready
    timeout_s: float = 20.0  # above the polling baseline's 15 s agent timeout + grace
    max_in_flight: int = 1024  # open loop: outstanding requests at most (and connections in the pool)
    retry_refused: int = 0  # a 503 with Retry-After is sent again after it, this many times at most (a real client)
    engine: str = "auto"  # "lean" (bench.lean_loop), "aiohttp", or "auto": lean for a plain open loop, else aiohttp


def lean_applies(spec: LoadSpec) -> bool:
    """Whether ``spec`` runs on the lean open loop: asked for, or "auto" and an open loop with no SSE and no retry."""
    if spec.engine not in ENGINES:
        raise ValueError(f"unknown load generator engine {spec.engine!r}: expected one of {', '.join(ENGINES)}")
    plain_open = spec.mode == "open" and not spec.follow and not spec.retry_refused
    if spec.engine == "lean" and not plain_open:
        raise ValueError("the lean engine runs open loops without follow or retry_refused only")
    return spec.engine == "lean" or (spec.engine == "auto" and plain_open)


ENGINES = ("auto", "lean", "aiohttp")


@dataclass
class LoadResult:
    """What happened; times in milliseconds, ``cpu_s`` is the generator's own CPU time."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)
    ready_ms: list[float] = field(default_factory=list)
    follow_failures: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_start_lag_ms: float = 0.0
    latencies_by_status: dict[str, list[float]] = field(default_factory=dict)
    slot_waits: int = 0  # open loop: requests that waited for a free slot (max_in_flight reached)
    sending_s: float = 0.0  # open loop: from the first scheduled send to the last actual one
    loop_lag_ms: dict[str, float] = field(default_factory=dict)  # the generator's own lag: p50, p99, max
    retried: int = 0  # 503s with Retry-After sent again (``retry_refused``); each answer is counted in ``statuses``


def spec_json(spec: LoadSpec) -> str:
    """The spec as the generator process reads it."""
    return json.dumps(asdict(spec))


def result_from_json(raw: dict[str, Any]) -> LoadResult:
    """Parse the generator's output."""
    return LoadResult(**raw)
