"""The dev stack's service environment: dev defaults, the user's own variables win."""

from __future__ import annotations

from devstack.dev import service_env
from devstack.servers import ServerHandle

REDIS = ServerHandle("redis://127.0.0.1:1/0", "embedded")
POSTGRES = ServerHandle("postgresql://postgres@127.0.0.1:2/agentready", "embedded")


def test_defaults_point_every_service_at_the_stack() -> None:
    env = service_env({}, REDIS, POSTGRES, "http://127.0.0.1:7880", 8000)
    assert env["REDIS_URL"] == REDIS.url and env["DATABASE_URL"] == POSTGRES.url
    assert env["AGENT_ROOM_BACKEND"] == "simulator"
    assert env["API_INTERNAL_URL"] == "http://127.0.0.1:8000"
    assert env["DEV_MODE"] == "true"


def test_the_users_environment_wins() -> None:
    env = service_env(
        {"REDIS_URL": "redis://elsewhere:6379/0", "AGENT_WAIT_FOR_USER": "true", "LOG_LEVEL": "DEBUG"},
        REDIS,
        POSTGRES,
        "http://127.0.0.1:7880",
        9001,
    )
    assert env["REDIS_URL"] == "redis://elsewhere:6379/0"
    assert env["AGENT_WAIT_FOR_USER"] == "true"
    assert env["API_PORT"] == "9001" and env["API_INTERNAL_URL"] == "http://127.0.0.1:9001"


def test_a_real_livekit_server_means_webrtc_rooms() -> None:
    env = service_env({}, REDIS, POSTGRES, "wss://lk.example", 8000, simulated=False)
    assert env["AGENT_ROOM_BACKEND"] == "livekit"
    assert env["LIVEKIT_URL"] == "wss://lk.example"
