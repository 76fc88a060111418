"""The services' environment per profile: dev defaults that the user's own variables beat; test profiles pinned."""

from __future__ import annotations

from devstack.livekit_side import LiveKitSide, from_environment, simulator
from devstack.profiles import BENCH, DEV, E2E, FAULT, Profile, SimulatorOptions, demo
from devstack.stack import service_labels, stack_env

REDIS_URL = "redis://127.0.0.1:1/0"
DATABASE_URL = "postgresql://postgres@127.0.0.1:2/agentready"
SIM = simulator(7880)


def env_of(
    profile: Profile = DEV, environ: dict[str, str] | None = None, livekit: LiveKitSide = SIM, api_port: int = 8000
) -> dict[str, str]:
    return stack_env(
        profile, environ or {}, redis_url=REDIS_URL, database_url=DATABASE_URL, livekit=livekit,
        api_port=api_port, sim_port=7880,
    )  # fmt: skip


def test_defaults_point_every_service_at_the_stack() -> None:
    env = env_of()
    assert env["REDIS_URL"] == REDIS_URL and env["DATABASE_URL"] == DATABASE_URL
    assert env["AGENT_ROOM_BACKEND"] == "simulator" and env["LIVEKIT_URL"] == "http://127.0.0.1:7880"
    assert env["API_INTERNAL_URL"] == "http://127.0.0.1:8000"
    assert env["DEV_MODE"] == "true"


def test_the_users_environment_wins_in_dev() -> None:
    environ = {"REDIS_URL": "redis://elsewhere:6379/0", "AGENT_WAIT_FOR_USER": "true", "LOG_LEVEL": "DEBUG"}
    env = env_of(DEV, environ, api_port=9001)
    assert env["REDIS_URL"] == "redis://elsewhere:6379/0"
    assert env["AGENT_WAIT_FOR_USER"] == "true"
    assert env["API_PORT"] == "9001" and env["API_INTERNAL_URL"] == "http://127.0.0.1:9001"


def test_a_real_livekit_server_means_webrtc_rooms() -> None:
    livekit = from_environment({"LIVEKIT_URL": "wss://lk.example"}, 7880)
    env = env_of(DEV, livekit=livekit)
    assert not livekit.simulated and env["AGENT_ROOM_BACKEND"] == "livekit"
    assert env["LIVEKIT_URL"] == "wss://lk.example"


def test_test_profiles_beat_the_environment_and_fill_in_ports() -> None:
    environ = {"AGENT_LOAD_THRESHOLD": "0.5", "REDIS_URL": "redis://elsewhere:6379/0"}
    e2e, fault, bench = env_of(E2E, environ), env_of(FAULT, environ, api_port=9100), env_of(BENCH, environ)
    assert (e2e["AGENT_LOAD_THRESHOLD"], fault["AGENT_LOAD_THRESHOLD"], bench["AGENT_LOAD_THRESHOLD"]) == (
        "inf",
        "0.9",
        "0.99",
    )
    assert e2e["REDIS_URL"] == REDIS_URL
    assert e2e["LIVEKIT_AGENT_NAME"] == "agentready-e2e-7880"
    assert fault["LIVEKIT_AGENT_NAME"] == "agentready-fault-9100" and fault["LOG_LEVEL"] == "WARNING"


def test_the_demo_agent_waits_for_the_user_whatever_the_environment_says() -> None:
    env = env_of(demo(50), {"AGENT_WAIT_FOR_USER": "false", "AGENT_MAX_JOBS": "7"})
    assert env["AGENT_WAIT_FOR_USER"] == "true"
    assert env["AGENT_MAX_JOBS"] == "7" and env["MAX_OPEN_SESSIONS_PER_ORG"] == "200"


def test_replicas_multiply_only_the_consumers() -> None:
    labels = [label for _, label in service_labels(("session_store", "dispatcher", "agent", "api"), 2)]
    assert labels == ["session-store-1", "session-store-2", "dispatcher-1", "dispatcher-2", "agent", "api"]


def test_simulator_options_become_its_command_line() -> None:
    options = SimulatorOptions(job_delay_ms=300, fixed_worker_load=0, empty_timeout_s=20, log_level="WARNING")
    assert options.argv("127.0.0.1", 7) == [
        "--host", "127.0.0.1", "--port", "7", "--job-delay-ms", "300", "--fixed-worker-load", "0",
        "--empty-timeout", "20", "--log-level", "WARNING", "--no-auto-create",
    ]  # fmt: skip
    # joins create no room, as on the deploy files' livekit-server (room.auto_create: false)
    assert SimulatorOptions().argv("127.0.0.1", 7) == ["--host", "127.0.0.1", "--port", "7", "--no-auto-create"]
    assert SimulatorOptions(auto_create=True).argv("127.0.0.1", 7) == ["--host", "127.0.0.1", "--port", "7"]
