"""The few PromQL forms the dashboard uses, evaluated over scrapes taken by this tool: not Prometheus.

Supported: ``histogram_quantile(q, sum by (le, ...) (rate(x_bucket{...}[w])))``,
``sum|max [by (...)] (rate(x{...}[w]))`` and ``sum|max [by (...)] (x{...})``; label matchers ``=``, ``!=``,
``=~``, ``!~``. ``rate`` is the increase between the first and last scrape inside the window over their distance
(Prometheus also extrapolates to the window's edges and handles counter resets; over a demo's minute the
difference is small, and the rendering says so).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
LOOKBACK_S = 30.0  # an instant query takes a series' last value this far back (Prometheus: 5 minutes)
Vector = dict[Labels, float]

_QUANTILE = re.compile(r"^histogram_quantile\(\s*([0-9.]+)\s*,\s*(.+)\)$", re.S)
_AGG = re.compile(r"^(sum|max)\s*(?:by\s*\(([^)]*)\))?\s*\((.+)\)$", re.S)
_RATE = re.compile(r"^rate\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*\[([0-9.]+)s\]\s*\)$", re.S)
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?$", re.S)
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


class UnsupportedQuery(ValueError):
    """An expression outside the forms this evaluator knows."""


@dataclass
class Scrapes:
    """Scrape rounds: at each time, every sample of every target (``instance`` label added)."""

    times: list[float] = field(default_factory=list)
    rounds: list[dict[tuple[str, Labels], float]] = field(default_factory=list)

    def add(self, at: float, samples: Mapping[tuple[str, Labels], float]) -> None:
        """Append one round (times must grow)."""
        self.times.append(at)
        self.rounds.append(dict(samples))


def evaluate(expr: str, scrapes: Scrapes, index: int) -> Vector:
    """``expr`` at scrape round ``index``."""
    expr = expr.strip()
    if match := _QUANTILE.match(expr):
        return _quantile(float(match[1]), evaluate(match[2], scrapes, index))
    if match := _AGG.match(expr):
        by = [label.strip() for label in (match[2] or "").split(",") if label.strip()]
        return _aggregate(match[1], by, evaluate(match[3], scrapes, index))
    if match := _RATE.match(expr):
        return _rate(match[1], _matchers(match[2]), float(match[3]), scrapes, index)
    if match := _SELECTOR.match(expr):
        return _instant(match[1], _matchers(match[2]), scrapes, index)
    raise UnsupportedQuery(expr)


def _matchers(text: str | None) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for m in _MATCHER.finditer(text or "")]


def _matches(labels: Labels, matchers: Sequence[tuple[str, str, str]]) -> bool:
    values = dict(labels)
    for name, op, wanted in matchers:
        value = values.get(name, "")
        ok = {
            "=": value == wanted,
            "!=": value != wanted,
            "=~": re.fullmatch(wanted, value) is not None,
            "!~": re.fullmatch(wanted, value) is None,
        }[op]
        if not ok:
            return False
    return True


def _select(name: str, matchers: Sequence[tuple[str, str, str]], samples: Mapping[tuple[str, Labels], float]) -> Vector:
    return {labels: value for (n, labels), value in samples.items() if n == name and _matches(labels, matchers)}


def _instant(name: str, matchers: Sequence[tuple[str, str, str]], scrapes: Scrapes, index: int) -> Vector:
    """Each series' latest value at or before ``index`` within the lookback (a target that missed a round keeps
    its last value, as Prometheus' lookback does)."""
    out: Vector = {}
    now = scrapes.times[index]
    for i in range(index, -1, -1):
        if now - scrapes.times[i] > LOOKBACK_S:
            break
        for labels, value in _select(name, matchers, scrapes.rounds[i]).items():
            out.setdefault(labels, value)
    return out


def _rate(name: str, matchers: Sequence[tuple[str, str, str]], window_s: float, scrapes: Scrapes, index: int) -> Vector:
    """Per series: (last - first) / (their distance) over the scrapes inside the window that have it."""
    now = scrapes.times[index]
    points: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for i in range(index + 1):
        if scrapes.times[i] >= now - window_s:
            for labels, value in _select(name, matchers, scrapes.rounds[i]).items():
                points[labels].append((scrapes.times[i], value))
    return {
        labels: max(0.0, seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0])
        for labels, seen in points.items()
        if len(seen) > 1 and seen[-1][0] > seen[0][0]
    }


def _aggregate(op: str, by: Sequence[str], vector: Vector) -> Vector:
    groups: dict[Labels, list[float]] = defaultdict(list)
    for labels, value in vector.items():
        values = dict(labels)
        groups[tuple((name, values.get(name, "")) for name in by)].append(value)
    return {key: (sum(values) if op == "sum" else max(values)) for key, values in groups.items()}


def _quantile(q: float, buckets: Vector) -> Vector:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds the rank."""
    series: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for labels, count in buckets.items():
        values = dict(labels)
        bound = float(values.pop("le"))
        series[tuple(sorted(values.items()))].append((bound, count))
    out: Vector = {}
    for key, points in series.items():
        points.sort()
        total = points[-1][1]
        if not points or not math.isinf(points[-1][0]) or total <= 0:
            continue
        rank, lower, below = q * total, 0.0, 0.0
        for bound, count in points:
            if count >= rank:
                if math.isinf(bound):
                    out[key] = lower  # the rank lies past the largest finite bucket
                else:
                    inside = count - below
                    out[key] = lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
                break
            lower, below = bound, count
    return out
