"""A service started with wrong settings says which and why in a line each, exits 2, and prints no value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _start(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WEBHOOK_", "DEV_MODE", "METRICS_"))}
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_setting_stops_the_service_with_one_line_naming_it_and_exit_2() -> None:
    started = _start("webhooks", WEBHOOK_SECRET_KEYS="not-a-key", METRICS_PORT="nine")
    assert started.returncode == 2, started.stderr
    lines = started.stderr.strip().splitlines()
    assert lines[0] == "webhooks: refusing to start, fix these settings:"
    assert lines[1:] == ["  - METRICS_PORT: Input should be a valid integer, unable to parse string as an integer"]
    assert "Traceback" not in started.stderr


@pytest.mark.parametrize("service", ["api", "dispatcher", "agent"])
def test_a_refused_secret_is_explained_and_no_value_of_the_environment_is_printed(service: str) -> None:
    started = _start(
        service,
        LIVEKIT_API_SECRET="short-but-secret",
        AGENT_CREDENTIAL_SECRET="c" * 40,
        DATABASE_URL="postgresql://app:hunter2-db-password@127.0.0.1:9/agentready",
    )
    assert started.returncode == 2, started.stderr
    assert f"{service}: refusing to start" in started.stderr
    assert "LIVEKIT_API_SECRET is 16 characters long" in started.stderr
    assert "short-but-secret" not in started.stderr and "hunter2" not in started.stderr
    assert "Traceback" not in started.stderr
