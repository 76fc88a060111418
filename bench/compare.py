"""Two runs side by side: each key figure of A (before) and B (after), the change, and whether it got better or worse.

``python -m bench compare A.json B.json`` compares two saved reports without running anything; ``python -m bench
compare --ref REV`` first runs the quick benchmark on REV and on the working tree (bench.compare_ref). A figure one
of the runs lacks (an older report's schema) shows "n/a"; a change within NOISE is "~" (the machine's noise).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.figures import Figure, dig, key_figures

NOISE = 0.05  # relative changes below 5% are not called better or worse
NA = "n/a"
DIGITS = {"%": 0, "req/s": 0, "MB": 0, "": 0}


@dataclass(frozen=True)
class Row:
    """One figure of both runs."""

    label: str
    unit: str
    before: float | None
    after: float | None
    change: str
    verdict: str  # "better", "**worse**", "~" or "" (not comparable)


def value_text(value: float | None, unit: str) -> str:
    """A figure with its unit, or "n/a"."""
    if value is None:
        return NA
    number = f"{value:.{DIGITS.get(unit, 1)}f}"
    return f"{number}{unit}" if unit in ("%", "/s") else f"{number} {unit}".rstrip()


def change_of(before: float | None, after: float | None, lower_is_better: bool, unit: str = "ms") -> tuple[str, str]:
    """The change from ``before`` to ``after`` (absolute and relative) and its verdict."""
    if before is None or after is None:
        return NA, ""
    delta = after - before
    relative = delta / abs(before) if before else (0.0 if delta == 0 else math.inf)
    text = f"{delta:+.{DIGITS.get(unit, 1)}f}" + (f" ({100 * relative:+.0f}%)" if before else "")
    if abs(relative) < NOISE:
        return text, "~"
    return text, "better" if (delta < 0) == lower_is_better else "**worse**"


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Row]:
    """Every key figure of both runs, in the report's order."""
    rows = []
    for a, b in zip(key_figures(before), key_figures(after), strict=True):
        rows.append(_row(a, b))
    return rows


def _row(a: Figure, b: Figure) -> Row:
    change, verdict = change_of(a.value, b.value, a.lower_is_better, a.unit)
    return Row(a.label, a.unit, a.value, b.value, change, verdict)


def _run_line(name: str, results: dict[str, Any]) -> str:
    load = dig(results, "machine_before", "load_average")
    return (
        f"- **{name}**: commit {results.get('commit', NA)}, profile `{results.get('profile', NA)}`, results schema "
        f"{results.get('schema', 1)}; {dig(results, 'machine_before', 'cpus')} cores "
        f"({dig(results, 'machine_before', 'cpu_model')}), load average at start "
        f"{load[0] if isinstance(load, list) else NA}; run took {value_text(results.get('duration_s'), 's')}"
    )


def _load_at_start(results: dict[str, Any]) -> float | None:
    load = dig(results, "machine_before", "load_average")
    return float(load[0]) if isinstance(load, list) and load else None


def caveats(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Why some changes may not be the code's: different profiles or machines."""
    notes = []
    if before.get("profile") != after.get("profile"):
        notes.append(
            "The profiles differ: phase durations and the burst's size differ, so latencies, rates and "
            "the burst's duration are not comparable."
        )
    if dig(before, "machine_before", "cpu_model") != dig(after, "machine_before", "cpu_model"):
        notes.append("The CPU models differ: CPU ms per session and throughput are not comparable.")
    loads = [_load_at_start(run) for run in (before, after)]
    cores = dig(after, "machine_before", "cpus") or 1
    busy = [load for load in loads if load is not None]
    if len(busy) == 2 and (max(busy) > cores or abs(busy[0] - busy[1]) > 1.0):
        notes.append(
            f"The machine was busy ({busy[0]:.1f} vs {busy[1]:.1f} load average at start, {cores} cores): latencies "
            "and throughput moved with other processes' load; CPU ms per session much less, though contention "
            "still raises it (shared caches), so trust only large changes of it."
        )
    return notes


def render(before: dict[str, Any], after: dict[str, Any], before_name: str, after_name: str) -> str:
    """The comparison as Markdown: which runs, then one row per figure with its change."""
    rows = compare(before, after)
    worse = [r.label for r in rows if r.verdict == "**worse**"]
    table = [f"| figure | {before_name} | {after_name} | change | |", "|---|---|---|---|---|"]
    table += [
        f"| {r.label} | {value_text(r.before, r.unit)} | {value_text(r.after, r.unit)} | {r.change} | {r.verdict} |"
        for r in rows
    ]
    summary = f"Worse by more than {100 * NOISE:.0f}%: " + (", ".join(worse) if worse else "nothing") + "."
    return "\n\n".join(
        [
            f"# Benchmark comparison: {before_name} -> {after_name}",
            "\n".join([_run_line(before_name, before), _run_line(after_name, after)]),
            *caveats(before, after),
            summary,
            "\n".join(table),
        ]
    )


def load(path: Path) -> dict[str, Any]:
    """A saved report (``latest.json``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a benchmark report (expected a JSON object)")
    return data


def write(before: dict[str, Any], after: dict[str, Any], names: tuple[str, str], out_dir: Path) -> Path:
    """Write compare.md and compare.json into ``out_dir``; return the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(row) for row in compare(before, after)]
    (out_dir / "compare.json").write_text(json.dumps({"runs": names, "rows": rows}, indent=1) + "\n", "utf-8")
    path = out_dir / "compare.md"
    path.write_text(render(before, after, *names) + "\n", encoding="utf-8")
    return path
