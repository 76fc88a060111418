"""The metric names (and label names) the services export, collected from the code's own registry, and the names a
PromQL expression mentions: what the dashboard and alert tests compare."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

import services.agent.metrics
import services.api.metrics
import services.dispatcher.metrics
import services.session_store.metrics  # noqa: F401 -- importing registers each service's metrics
from services.runtime.stream_metrics import stream_metric_families

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
OURS = ("agentready_", "lk_agents_")  # ours, and livekit-agents' own (served by the agent's endpoint)
_NAME = re.compile(r"\b((?:agentready|lk_agents)_[a-zA-Z0-9_:]*)\b(\{[^}]*\})?")
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def exported() -> dict[str, set[str]]:
    """Every sample name the services can export (``x_total``, ``x_bucket``, ...) -> its label names."""
    families: list[Metric] = [*REGISTRY.collect(), *stream_metric_families()]
    names: dict[str, set[str]] = {}
    for family in families:
        if not family.name.startswith(OURS):
            continue
        labels = {label for sample in family.samples for label in sample.labels} | _declared_labels(family.name)
        for suffix in ("", *_SUFFIXES.get(family.type, ())):
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def _declared_labels(name: str) -> set[str]:
    """Label names of a metric that may have no sample yet (a labelled counter nobody incremented)."""
    for collector, collector_names in REGISTRY._collector_to_names.items():
        if {name, name + "_total", name + "_bucket"} & set(collector_names):
            return set(getattr(collector, "_labelnames", ()))
    for family in stream_metric_families():
        if family.name == name:
            return {"stream", "group"}
    return set()


def referenced(expr: str) -> list[tuple[str, set[str]]]:
    """Each of our metric names in ``expr``, with the label names its selector matches on."""
    return [(match[1], set(_LABEL.findall(match[2] or ""))) for match in _NAME.finditer(expr)]


def unknown_names(expr: str, known: dict[str, set[str]]) -> list[str]:
    """What ``expr`` names that the services do not export: metric names, or label names a metric does not have."""
    problems = []
    for name, labels in referenced(expr):
        if name not in known:
            problems.append(name)
        else:
            problems += [f"{name}{{{label}}}" for label in sorted(labels - known[name])]
    return problems


_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def unknown_grouping(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Labels ``expr`` groups by (``by (...)``) that none of the metrics it names has."""
    available = set().union(*(known.get(name, set()) for name, _ in referenced(expr)))
    grouped = {label.strip() for match in _BY.findall(expr) for label in match.split(",") if label.strip()}
    return sorted(grouped - available)
