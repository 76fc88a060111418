"""deploy/prometheus/alerts.yml and deploy/grafana/agentready-dashboard.json: well-formed, and every metric and
label they query is one the services export (collected from the code's registry), so a renamed metric breaks this
test instead of silently emptying a panel or an alert; every expression parses with Prometheus' own parser."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY, load_yaml
from tests.deploy.metric_names import exported, referenced, unknown_grouping, unknown_names
from tests.deploy.promql import checker, parse_errors

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "agentready-dashboard.json"
DURATION = re.compile(r"^\d+[smhd]$")


@pytest.fixture(scope="module")
def known() -> dict[str, set[str]]:
    return exported()


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def _exprs(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def test_the_registry_holds_every_service_metric(known: dict[str, set[str]]) -> None:
    for name in (
        "agentready_session_stage_seconds_bucket",
        "agentready_session_time_to_ready_seconds_count",
        "agentready_sessions_terminal_total",
        "agentready_dispatches_total",
        "agentready_livekit_call_errors_total",
        "agentready_admission_refusals_total",
        "agentready_sse_connections",
        "agentready_stream_dead_letters",
        "agentready_agent_worker_registered",
    ):
        assert name in known, name
    assert known["agentready_session_stage_seconds_bucket"] == {"stage", "org", "flow", "le"}


def test_the_alerts_are_the_ones_asked_for_and_well_formed(rules: list[dict[str, Any]]) -> None:
    names = {rule["alert"] for rule in rules}
    assert {
        "AgentreadyReadinessSlow",
        "AgentreadySessionsExpiring",
        "AgentreadyDeadLettersGrowing",
        "AgentreadyNoWorkerRegistered",
    } <= names
    assert len(names) == len(rules), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_every_alert_queries_only_exported_metrics_and_labels(
    rules: list[dict[str, Any]], known: dict[str, set[str]]
) -> None:
    for rule in rules:
        assert referenced(rule["expr"]), f"{rule['alert']} names no metric of ours"
        assert unknown_names(rule["expr"], known) == [], rule["alert"]
        assert unknown_grouping(rule["expr"], known) == [], rule["alert"]


def test_every_dashboard_panel_queries_only_exported_metrics_and_labels(
    dashboard: dict[str, Any], known: dict[str, set[str]]
) -> None:
    for title, exprs in _exprs(dashboard).items():
        assert exprs, title
        for expr in exprs:
            assert referenced(expr), f"{title}: {expr}"
            assert unknown_names(expr, known) == [], f"{title}: {expr}"
            assert unknown_grouping(expr, known) == [], f"{title}: {expr}"


def test_an_unknown_metric_or_label_is_caught(known: dict[str, set[str]]) -> None:
    assert unknown_names("rate(agentready_sesions_terminal_total[5m])", known) == ["agentready_sesions_terminal_total"]
    assert unknown_names('agentready_stream_lag{grop="x"}', known) == ["agentready_stream_lag{grop}"]
    assert unknown_grouping("sum by (reason) (agentready_stream_lag)", known) == ["reason"]


def test_the_dashboard_has_the_panels_asked_for_laid_out_without_overlap(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(e for group in _exprs(dashboard).values() for e in group)
    for needed in (
        "agentready_session_stage_seconds_bucket",  # stage latency p50/p95
        "agentready_session_time_to_ready_seconds_bucket",
        'agentready_session_transitions_total{status="ready"}',  # ready rate
        "agentready_sessions_terminal_total",  # failures by code
        "agentready_stream_lag",
        "agentready_stream_pending",
        "agentready_stream_dead_letters",
        "agentready_sse_connections",
        "agentready_admission_refusals_total",
    ):
        assert needed in exprs, needed
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "org"}


@pytest.fixture(scope="module")
def promql_checker() -> Path:
    found = checker()
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Go toolchain to build the PromQL checker", pytrace=False)
        pytest.skip("no Go toolchain: the PromQL syntax check needs tests/deploy/promql_check built")
    return found


def test_every_expression_parses_with_prometheus_own_parser(
    promql_checker: Path, rules: list[dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    exprs = [rule["expr"] for rule in rules]
    # Grafana fills its variables in before Prometheus sees a query
    exprs += [
        expr.replace("$__rate_interval", "1m").replace("$org", ".*")
        for group in _exprs(dashboard).values()
        for expr in group
    ]
    assert parse_errors(promql_checker, exprs) == []
    broken = parse_errors(promql_checker, ["sum by (le) (rate(agentready_stream_lag[5m])", "rate(x[5q])"])
    assert len(broken) == 2 and "unclosed left parenthesis" in broken[0]
