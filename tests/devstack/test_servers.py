"""devstack.servers finds real servers: env URLs as given, else embedded redis-server / PostgreSQL."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from devstack import servers
from devstack.docker_engine import docker_engine_available

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def no_env_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REDIS_URL / DATABASE_URL, and no containers: the embedded path is taken."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(servers, "docker_engine_available", lambda: False)


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _port_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.usefixtures("no_env_urls")
def test_embedded_redis_answers_ping_and_stops() -> None:
    with servers.redis_server() as handle:
        assert handle.source == "embedded"
        assert handle.url.startswith("redis://127.0.0.1:")
        assert handle.pid is not None
        client = redis.Redis.from_url(handle.url)
        assert client.ping() is True
        client.close()
    assert _gone(handle.pid)
    assert _port_closed(handle.url)


@pytest.mark.usefixtures("no_env_urls")
def test_embedded_redis_keeps_data_between_runs_when_persistent(tmp_path: Path) -> None:
    key, value = f"devstack-test-{uuid.uuid4()}", b"kept"
    with servers.redis_server(tmp_path, persistent=True) as first:
        redis.Redis.from_url(first.url).set(key, value)
    with servers.redis_server(tmp_path, persistent=True) as second:
        assert redis.Redis.from_url(second.url).get(key) == value


@pytest.mark.usefixtures("no_env_urls")
def test_embedded_postgres_answers_select_1_and_stops() -> None:
    with servers.postgres_server() as handle:
        assert handle.source == "embedded"
        assert handle.url.startswith("postgresql://postgres@127.0.0.1:")
        assert handle.pid is not None
        postmaster = psutil.Process(handle.pid)
        with psycopg.connect(handle.url) as conn:
            assert conn.execute("SELECT 1, current_database()").fetchone() == (1, servers.DEFAULT_DATABASE)
        backends = [child.pid for child in postmaster.children(recursive=True)]
        assert backends  # checkpointer, walwriter, ...: they must go too
    assert all(_gone(pid) for pid in [handle.pid, *backends])
    assert _port_closed(handle.url)


@pytest.mark.usefixtures("no_env_urls")
def test_embedded_postgres_keeps_data_in_its_data_dir() -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    # not tmp_path: as root the server runs as another user, who cannot traverse pytest's 0700 base dir
    with tempfile.TemporaryDirectory() as tmp:
        _create_then_read(Path(tmp), table)


def _create_then_read(data_dir: Path, table: str) -> None:
    with servers.postgres_server(data_dir) as first, psycopg.connect(first.url) as conn:
        conn.execute(f"CREATE TABLE {table} (n int)")
        conn.execute(f"INSERT INTO {table} VALUES (42)")
        conn.commit()
    with servers.postgres_server(data_dir) as second, psycopg.connect(second.url) as conn:
        assert conn.execute(f"SELECT n FROM {table}").fetchone() == (42,)


def test_environment_urls_are_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6390/3")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.example:5433/app")
    with servers.redis_server() as r, servers.postgres_server() as p:
        assert (r.url, r.source, r.pid) == ("redis://redis.example:6390/3", "env", None)
        assert (p.url, p.source, p.pid) == ("postgresql://app:pw@db.example:5433/app", "env", None)


def test_docker_check_is_fast_and_false_without_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    unconfigured = not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists()
    started = time.perf_counter()
    answer = docker_engine_available()
    assert time.perf_counter() - started < 1.5
    if unconfigured:
        assert answer is False


def test_docker_check_fails_fast_when_docker_host_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
        started = time.perf_counter()
        assert docker_engine_available() is False
        assert time.perf_counter() - started < 1.5
