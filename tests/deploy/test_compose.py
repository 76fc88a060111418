"""deploy/docker-compose.yml: valid against the compose-spec schema, and it names only services, commands and
environment variables that exist."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from services.agent.settings import AgentSettings
from services.agent.worker import CLOSE_TIMEOUT_SECONDS
from tests.deploy.manifests import COMMANDS, DEPLOY, allowed_env, load_yaml

OURS = {"migrate", "api", "dispatcher", "session_store", "webhooks", "agent"}
SCALED = ("dispatcher", "agent", "session_store", "webhooks")
DEFAULT_DRAIN_S = AgentSettings.model_fields["agent_drain_timeout_seconds"].default


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DEPLOY / "docker-compose.yml")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text()))


def test_compose_file_validates_against_the_compose_spec(
    compose: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_a_misspelt_key(compose: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["restrat"] = "always"
    assert not validator.is_valid(broken)


def test_infrastructure_and_every_service_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == OURS | {"redis", "postgres", "livekit"}
    assert "--appendonly" in services["redis"]["command"]
    assert services["livekit"]["image"].startswith("livekit/livekit-server")
    assert "--dev" in services["livekit"]["command"]


def test_each_service_runs_an_existing_command_with_only_its_own_settings(compose: dict[str, Any]) -> None:
    for name in OURS:
        service = compose["services"][name]
        command = service["command"]
        assert command[0] in COMMANDS and command[0] == name, f"{name}: unknown command {command}"
        unknown = set(service["environment"]) - allowed_env(command[0])
        assert not unknown, f"{name} sets variables no settings class reads: {sorted(unknown)}"


def test_each_service_has_a_health_check_restart_policy_and_grace_period(compose: dict[str, Any]) -> None:
    for name in OURS - {"migrate"}:
        service = compose["services"][name]
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "deploy.docker.healthcheck", name]
        assert "stop_grace_period" in service, name
    assert compose["services"]["migrate"]["restart"] == "on-failure"


def test_scaled_services_can_have_replicas(compose: dict[str, Any]) -> None:
    # `docker compose up --scale dispatcher=3 --scale agent=2`: no fixed names, no host ports to collide on
    for name in SCALED:
        service = compose["services"][name]
        assert "container_name" not in service, name
        assert "ports" not in service, name


def test_dependencies_name_existing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_published_ports_bind_loopback_unless_the_user_opts_in(compose: dict[str, Any]) -> None:
    # dev mode and public secrets are the defaults: nothing may answer on other interfaces without AGENTREADY_BIND
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert {name for name, _ in published} >= {"api", "livekit"}
    for name, port in published:
        assert isinstance(port, str) and port.startswith("${AGENTREADY_BIND:-127.0.0.1}:"), (name, port)


def test_the_livekit_server_creates_no_room_on_join(compose: dict[str, Any]) -> None:
    # a participant token that outlived its session must not re-create the room the dispatcher removed
    config = yaml.safe_load(compose["services"]["livekit"]["environment"]["LIVEKIT_CONFIG"])
    assert config["room"]["auto_create"] is False


def test_consumers_and_the_agent_serve_metrics_inside_the_network(compose: dict[str, Any]) -> None:
    for name in SCALED:
        service = compose["services"][name]
        port = service["environment"]["METRICS_PORT"]
        assert service["environment"]["METRICS_HOST"] == "0.0.0.0", name
        assert service["expose"] == [port], name


def test_the_metrics_overlay_scrapes_every_service_on_loopback_only(validator: jsonschema.Draft7Validator) -> None:
    overlay = load_yaml(DEPLOY / "docker-compose.metrics.yml")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(overlay)]
    assert errors == []
    for service in overlay["services"].values():
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        for volume in service["volumes"]:
            assert (DEPLOY / volume.split(":")[0]).exists(), volume
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (sd,) = next(job for job in scrape["scrape_configs"] if job["job_name"] == "agentready")["dns_sd_configs"]
    assert set(sd["names"]) == set(SCALED) and sd["port"] == 9464
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]


def _seconds(duration: str) -> float:
    """A compose duration (``90s``, ``1m30s``, ``1.5m``) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_the_agent_gets_a_stop_grace_period_longer_than_its_drain_and_close(compose: dict[str, Any]) -> None:
    # docker stop sends SIGTERM, then SIGKILL after the grace period: running sessions get the drain timeout, then
    # the worker's close (bounded by CLOSE_TIMEOUT_SECONDS) ends what is left, each session saying why.
    agent = compose["services"]["agent"]
    drain = float(agent["environment"].get("AGENT_DRAIN_TIMEOUT_SECONDS") or DEFAULT_DRAIN_S)
    assert _seconds(agent["stop_grace_period"]) > drain + CLOSE_TIMEOUT_SECONDS, (agent["stop_grace_period"], drain)
