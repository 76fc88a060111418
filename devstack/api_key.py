"""The dev stack's API key: migrations applied, then ``python -m services.api create-key`` (DEV_API_KEY if set)."""

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


async def create_dev_api_key(env: Mapping[str, str], cwd: Path, deadline_s: float = 60.0) -> str:
    """Apply both schemas, then create (or keep, when DEV_API_KEY already exists) the dev org's key; return it."""
    python = sys.executable
    for service in ("session_store", "api"):
        await _run([python, "-m", f"services.{service}", "migrate"], env, cwd, deadline_s)
    argv = [python, "-m", "services.api", "create-key", "--org", DEV_ORG]
    if env.get("DEV_API_KEY"):
        argv += ["--key", env["DEV_API_KEY"]]
    return await _run(argv, env, cwd, deadline_s)
