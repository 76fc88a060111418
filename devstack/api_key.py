"""A stack's API key: migrations applied, then ``python -m services.api create-key`` (a given key is kept)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.readiness import NotReadyError

DEV_ORG = "dev"


async def _run(argv: list[str], env: Mapping[str, str], cwd: Path, deadline_s: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=dict(env), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=deadline_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise NotReadyError(f"{' '.join(argv[1:])} did not finish within {deadline_s:.0f}s") from None
    if proc.returncode != 0:
        raise NotReadyError(f"{' '.join(argv[1:])} failed (code {proc.returncode}): {err.decode().strip()}")
    return out.decode().strip()


async def create_api_key(
    env: Mapping[str, str], cwd: Path, *, org: str = DEV_ORG, key: str | None = None, deadline_s: float = 60.0
) -> str:
    """Apply both schemas, then create (or keep, when ``key`` already exists) ``org``'s key; return it."""
    python = sys.executable
    for service in ("session_store", "api"):
        await _run([python, "-m", f"services.{service}", "migrate"], env, cwd, deadline_s)
    argv = [python, "-m", "services.api", "create-key", "--org", org]
    if key:
        argv += ["--key", key]
    return await _run(argv, env, cwd, deadline_s)
