"""Real servers for the whole suite: Redis and PostgreSQL found by devstack (env, testcontainers, embedded), the
LiveKit simulator, and a real LiveKit server (env, a livekit-server binary, or built with Go; skipped with a reason
elsewhere, failed in CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from redis.asyncio import Redis

from devstack.livekit_discovery import LiveKitChoice, discover_livekit
from devstack.livekit_server import RunningLiveKit, running_livekit
from devstack.livekit_sim import Simulator, SimulatorConfig, run_simulator
from devstack.rtc_exit import exit_now_if_rtc_ran
from devstack.servers import postgres_server, redis_server

# Read before any test runs: livekit-agents' AgentServer.run() (used in-process by some tests) writes
# LIVEKIT_URL/API_KEY/API_SECRET into os.environ, which must not look like a real server.
_GIVEN_ENV = dict(os.environ)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server for this test run."""
    with redis_server() as handle:
        yield handle.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the test Redis without decode_responses (bytes), like the broker's."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on a real PostgreSQL server, dropped after the run."""
    with postgres_server() as handle:
        name = f"agentready_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(handle.url, name)
        finally:
            with psycopg.connect(handle.url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def real_livekit_choice() -> LiveKitChoice:
    """Which real LiveKit server this run can have (LIVEKIT_URL, a binary, built with Go); skipped with the reason
    when none, failed instead under CI=true (a silent skip must not pass in CI)."""
    choice = discover_livekit(_GIVEN_ENV)
    if not choice.real:
        if _GIVEN_ENV.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no real LiveKit server: {choice.reason}", pytrace=False)
        pytest.skip(f"no real LiveKit server: {choice.reason}")
    return choice


@pytest.fixture(scope="session")
def real_livekit(
    real_livekit_choice: LiveKitChoice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningLiveKit]:
    """A real LiveKit server for this test run, shared by its tests."""
    with running_livekit(real_livekit_choice, tmp_path_factory.mktemp("livekit")) as server:
        yield server


@pytest.fixture
def sim_assign_timeout() -> float:
    """How long the ``sim`` fixture's simulator awaits a worker's availability answer (a directory may override it)."""
    return 3.0


@pytest.fixture
async def sim(sim_assign_timeout: float) -> AsyncIterator[Simulator]:
    """A fresh LiveKit simulator on a free port."""
    saved = dict(os.environ)
    async with run_simulator(config=SimulatorConfig(assign_timeout=sim_assign_timeout, reap_interval=0.1)) as simulator:
        yield simulator
    # AgentServer.run() writes LIVEKIT_URL/API_KEY/API_SECRET into os.environ: undo it.
    os.environ.clear()
    os.environ.update(saved)


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the run's exit status for :func:`pytest_unconfigure`."""
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Fixtures are torn down and the summary written: once livekit.rtc ran, skip the interpreter's finalisation,
    where its native runtime can abort the process (exit 134 after every test had passed)."""
    exit_now_if_rtc_ran(config.stash.get(_EXIT_STATUS, 0))
