"""Percentiles and summaries of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN when there are no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Count, mean and the percentiles the report shows (milliseconds in, milliseconds out)."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "p999": percentile(ordered, 99.9),
        "max": ordered[-1],
    }


def steady_rate(times: Sequence[float], trim: float = 0.1) -> float | None:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of their times (seconds): the rate of the
    steady middle, without the pipeline's filling and draining; None with fewer than 3 events or no time between."""
    if len(times) < 3:
        return None
    ordered = sorted(times)
    low = int(trim * (len(ordered) - 1))
    high = len(ordered) - 1 - low
    span = ordered[high] - ordered[low]
    return (high - low) / span if span > 0 else None
