"""Prometheus' own PromQL parser as a test tool: tests/deploy/promql_check (Go, ``promql/parser`` of the pinned
github.com/prometheus/prometheus module) built once into the user cache, like the livekit-server binary.

``promtool`` itself is not on PyPI and building it pulls in all of Prometheus; the parser alone builds in seconds
once its module is downloaded (~1 min the first time on a busy 2-core machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from devstack.livekit_build import find_go

SOURCE = Path(__file__).resolve().parent / "promql_check"
BUILD_DEADLINE_S = 600.0


def _cached_path() -> Path:
    digest = hashlib.sha256(b"".join((SOURCE / name).read_bytes() for name in ("go.mod", "go.sum", "main.go")))
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentready" / "promqlcheck" / digest.hexdigest()[:16] / "promqlcheck"


def checker() -> Path | None:
    """The built checker (built now if needed); None when there is no Go toolchain to build it with."""
    path = _cached_path()
    if path.is_file():
        return path
    go = find_go()
    if go is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [go, "build", "-o", str(path), "."], cwd=SOURCE, capture_output=True, text=True, timeout=BUILD_DEADLINE_S
    )
    assert built.returncode == 0, f"building the PromQL checker failed:\n{built.stderr}"
    return path


def parse_errors(binary: Path, exprs: list[str]) -> list[str]:
    """Prometheus' parser's complaint about each expression that does not parse ([] when all do)."""
    out = subprocess.run([str(binary)], input=json.dumps(exprs), capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.splitlines()
