"""Draw the dashboard's panels (deploy/grafana/agentready-dashboard.json: layout, titles, queries, legends) with
matplotlib, each query evaluated by :mod:`devstack.dashboard.promql` over the scrapes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from devstack.dashboard.promql import Scrapes, evaluate

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentready-dashboard.json"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_UNITS = {"s": "seconds", "reqps": "per second", "short": ""}


def concrete(expr: str, window_s: float) -> str:
    """The query with Grafana's variables filled in: every organisation, and the rate window."""
    return expr.replace("$__rate_interval", f"{window_s:g}s").replace('"$org"', '".*"')


def series_of(target: dict[str, Any], scrapes: Scrapes, window_s: float) -> dict[str, list[float]]:
    """Legend -> value at each scrape round (NaN where the query has no value)."""
    expr = concrete(target["expr"], window_s)
    out: dict[str, list[float]] = {}
    for index in range(len(scrapes.times)):
        for labels, value in evaluate(expr, scrapes, index).items():
            legend = _legend(target.get("legendFormat", ""), dict(labels))
            out.setdefault(legend.strip() or expr, [math.nan] * len(scrapes.times))[index] = value
    return out


def _legend(template: str, labels: dict[str, str]) -> str:
    return _LEGEND.sub(lambda match: labels.get(match[1], ""), template)


def render(scrapes: Scrapes, out: Path, *, window_s: float, caption: str, dashboard: Path = DASHBOARD) -> None:
    """Write the PNG: panels placed as the dashboard's grid places them (24 columns)."""
    spec = json.loads(dashboard.read_text())
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in spec["panels"])
    unit_w, unit_h = 1.0, 0.42  # inches per grid column and row
    fig = plt.figure(figsize=(24 * unit_w, bottom * unit_h + 1.4))
    fig.suptitle(f"{spec['title']} (rendered from real scrapes: {caption})", fontsize=15, x=0.01, ha="left")
    height = bottom * unit_h + 1.4
    for panel in spec["panels"]:
        pos = panel["gridPos"]
        left, top = pos["x"] / 24, (pos["y"] * unit_h + 0.9) / height
        if panel["type"] == "row":
            fig.text(left + 0.003, 1 - top - 0.012, panel["title"], fontsize=13, weight="bold")
            continue
        ax = fig.add_axes((left + 0.03, 1 - top - pos["h"] * unit_h / height + 0.035, pos["w"] / 24 - 0.045,
                           pos["h"] * unit_h / height - 0.065))  # fmt: skip
        _panel(ax, panel, scrapes, window_s)
    fig.text(0.01, 0.004, _footnote(window_s), fontsize=9, color="dimgray")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)


def _panel(ax: Any, panel: dict[str, Any], scrapes: Scrapes, window_s: float) -> None:
    ax.set_title(panel["title"], fontsize=11, loc="left")
    drawn = 0
    for target in panel["targets"]:
        for legend, values in sorted(series_of(target, scrapes, window_s).items()):
            ax.plot(scrapes.times, values, linewidth=1.3, label=legend)
            drawn += 1
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    ax.set_ylabel(_UNITS.get(unit, unit), fontsize=8)
    ax.set_xlabel("seconds since the first scrape", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    if drawn:
        ax.legend(fontsize=7, loc="upper left", ncol=2 if drawn > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="gray")


def _footnote(window_s: float) -> str:
    return (
        "Not Grafana: devstack.dashboard evaluates each panel's PromQL from deploy/grafana/agentready-dashboard.json "
        f"itself over /metrics scrapes (\\$__rate_interval = {window_s:g} s, \\$org = all; rate without Prometheus' "
        "extrapolation), and draws it with matplotlib."
    )
