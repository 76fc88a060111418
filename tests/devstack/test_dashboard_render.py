"""devstack.dashboard: the dashboard's PromQL forms evaluated over scrapes as Prometheus would (histogram_quantile's
interpolation, rate, aggregation by label), every panel's query understood, and a PNG drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.dashboard.promql import Labels, Scrapes, UnsupportedQuery, evaluate
from devstack.dashboard.render import DASHBOARD, concrete, render
from devstack.dashboard.scrape import load, parse, save

HIST = "agentready_session_time_to_ready_seconds"


def _labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def _histogram(counts: dict[str, float], **labels: str) -> dict[tuple[str, Labels], float]:
    """Cumulative bucket counts, as exported."""
    return {(f"{HIST}_bucket", _labels(le=le, **labels)): value for le, value in counts.items()}


def _scrapes() -> Scrapes:
    scrapes = Scrapes()
    scrapes.add(0.0, _histogram({"1.0": 0, "2.0": 0, "+Inf": 0}, org="a", instance="s1"))
    # 10 more observations in 10 s: 4 under 1 s, 6 between 1 and 2 s
    scrapes.add(10.0, _histogram({"1.0": 4, "2.0": 10, "+Inf": 10}, org="a", instance="s1"))
    return scrapes


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    scrapes = _scrapes()
    expr = f"histogram_quantile(0.5, sum by (le) (rate({HIST}_bucket[15s])))"
    # rank 5 of 10: the 1st of the 6 in (1, 2]: 1 + (5 - 4) / 6
    assert evaluate(expr, scrapes, 1) == {(): pytest.approx(1 + 1 / 6)}
    assert evaluate(expr, scrapes, 0) == {}  # one scrape: no rate yet


def test_rate_and_aggregation_by_label() -> None:
    scrapes = Scrapes()
    for at, n in ((0.0, 0), (5.0, 10)):
        scrapes.add(
            at,
            {
                ("agentready_dispatches_total", _labels(attempt="first", instance="d1")): n,
                ("agentready_dispatches_total", _labels(attempt="first", instance="d2")): 2 * n,
                ("agentready_dispatches_total", _labels(attempt="redispatch", instance="d1")): 1,
            },
        )
    got = evaluate('sum by (attempt) (rate(agentready_dispatches_total{attempt=~"first|redispatch"}[10s]))', scrapes, 1)
    assert got == {(("attempt", "first"),): pytest.approx(6.0), (("attempt", "redispatch"),): 0.0}
    assert evaluate('max by (instance) (agentready_dispatches_total{attempt="first"})', scrapes, 1) == {
        (("instance", "d1"),): 10,
        (("instance", "d2"),): 20,
    }
    with pytest.raises(UnsupportedQuery):
        evaluate("avg_over_time(agentready_dispatches_total[5m])", scrapes, 1)


def test_every_dashboard_query_is_understood() -> None:
    spec = json.loads(DASHBOARD.read_text())
    scrapes = _scrapes()
    for panel in spec["panels"]:
        for target in panel.get("targets", []):
            evaluate(concrete(target["expr"], 15), scrapes, 1)  # raises UnsupportedQuery otherwise


def test_scrapes_round_trip_and_draw(tmp_path: Path) -> None:
    text = "# TYPE agentready_sse_connections gauge\nagentready_sse_connections 3.0\n"
    parsed = parse(text, "api")
    assert parsed == {("agentready_sse_connections", _labels(instance="api")): 3.0}
    scrapes = _scrapes()
    save(scrapes, tmp_path / "scrapes.json")
    again = load(tmp_path / "scrapes.json")
    assert again.times == scrapes.times and again.rounds == scrapes.rounds
    out = tmp_path / "dashboard.png"
    render(again, out, window_s=15, caption="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
