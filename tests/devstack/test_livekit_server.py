"""Which LiveKit (devstack.livekit_server): the discovery order, and the real server started on free loopback ports."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from devstack import livekit_build
from devstack.livekit_discovery import discover_livekit
from devstack.livekit_server import RunningLiveKit, running_livekit_server, server_config
from devstack.livekit_side import discovered


def fake_binary(directory: Path) -> Path:
    path = directory / "livekit-server"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_environment_comes_first() -> None:
    env = {"LIVEKIT_URL": "http://lk.example:7880", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    choice = discover_livekit(env)
    assert (choice.source, choice.url, choice.api_key, choice.api_secret) == ("env", env["LIVEKIT_URL"], "k", "s")


def test_a_url_without_credentials_falls_back_to_the_simulator_and_says_why() -> None:
    choice = discover_livekit({"LIVEKIT_URL": "http://lk.example:7880"})
    assert choice.source == "simulator"
    assert "LIVEKIT_API_KEY" in choice.reason


def test_a_binary_on_path_is_used(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path)
    choice = discover_livekit({"PATH": str(tmp_path)})
    assert (choice.source, choice.binary) == ("binary", binary)


def test_without_go_or_a_binary_the_simulator_runs_with_a_one_line_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(livekit_build, "find_go", lambda: None)
    choice = discover_livekit({"PATH": str(tmp_path)})
    assert choice.source == "simulator"
    assert choice.reason.startswith("no Go toolchain")
    assert "\n" not in choice.reason


def test_the_cache_lives_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert livekit_build.cache_dir() == tmp_path / "agentready" / "livekit-server" / livekit_build.VERSION


@pytest.mark.timeout(60)
def test_two_real_servers_run_side_by_side_on_loopback_and_stop_without_orphans(
    real_livekit: RunningLiveKit, tmp_path: Path
) -> None:
    choice = discover_livekit({k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")})
    if choice.binary is None:
        pytest.skip(f"no livekit-server binary: {choice.reason}")
    with (
        running_livekit_server(choice.binary, tmp_path / "a") as first,
        running_livekit_server(
            choice.binary, tmp_path / "b", webhook_urls=["http://127.0.0.1:9/api/livekit/webhook"]
        ) as second,
    ):
        assert first.url != second.url
        assert first.url.startswith("http://127.0.0.1:")
        for server in (first, second, real_livekit):
            assert httpx.get(server.url, timeout=2.0).status_code == 200
        config = next((tmp_path / "b").glob("livekit-*.yaml")).read_text()
        assert "/api/livekit/webhook" in config
    for server in (first, second):
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url, timeout=1.0)


def test_the_stack_starts_a_found_binary_on_the_livekit_port(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path)
    side = discovered({"PATH": str(tmp_path)}, 7880)
    assert (side.url, side.server, side.simulated, side.started_by_stack) == (
        "http://127.0.0.1:7880",
        binary,
        False,
        True,
    )
    assert "LIVEKIT_URL not set" in side.reason


def test_the_stack_uses_the_environments_livekit_and_starts_none() -> None:
    env = {"LIVEKIT_URL": "wss://lk.example", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    side = discovered(env, 7880)
    assert (side.url, side.api_key, side.server, side.started_by_stack) == ("wss://lk.example", "k", None, False)


def test_without_a_server_the_stack_runs_the_simulator_and_the_banner_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(livekit_build, "find_go", lambda: None)
    side = discovered({"PATH": str(tmp_path)}, 7881)
    assert (side.simulated, side.url) == (True, "http://127.0.0.1:7881")
    assert side.reason == "devstack.livekit_sim simulator: no Go toolchain (and no livekit-server binary)"


def test_the_dev_servers_config_creates_no_room_on_join() -> None:
    # make dev and the tests' real server behave as the deploy files' (a late join cannot re-create a room)
    config = server_config(7880, "devkey", "secret", [])
    assert config["room"] == {"empty_timeout": 300, "departure_timeout": 20, "auto_create": False}
