"""The consumers' container health check: their process must run; for readiness, Redis must answer and the
service's consumer groups must exist (on a real Redis)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

import pytest
from redis.asyncio import Redis

from deploy.docker import healthcheck
from deploy.docker.healthcheck import groups_ready, main, process_running
from services.runtime.streams import ensure_groups


async def test_groups_ready_once_the_service_created_its_groups(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # streams of this test's own, so a shared Redis where the services already ran does not answer for it
    prefix = f"test-health-{uuid.uuid4().hex[:8]}"
    subscriptions = {"dispatcher": (f"{prefix}:a", f"{prefix}:b")}
    monkeypatch.setattr(healthcheck, "SUBSCRIPTIONS", subscriptions)
    ready, detail = groups_ready(redis_url, "dispatcher")
    assert not ready and "missing" in detail
    client = Redis.from_url(redis_url)
    try:
        await ensure_groups(client, subscriptions)
        ready, detail = groups_ready(redis_url, "dispatcher")
        assert ready, detail
    finally:
        await client.delete(*subscriptions["dispatcher"])
        await client.aclose()


def test_process_running_finds_the_service_by_its_module() -> None:
    marker = f"services.test_{uuid.uuid4().hex[:8]}"
    assert not process_running(marker.removeprefix("services."))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # the child's command line is the interpreter's until it has exec'd: look again, with a deadline
        deadline = time.monotonic() + 10
        while not process_running(marker.removeprefix("services.")):
            assert time.monotonic() < deadline, "the child process was never found by its module name"
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait(timeout=10)


def test_unreachable_redis_or_unknown_service_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    assert main(["nonsense"]) == 1
    ready, detail = groups_ready(f"redis://127.0.0.1:{port}/0", "session_store")
    assert not ready and "unreachable" in detail
