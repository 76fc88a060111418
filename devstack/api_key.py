"""A stack's API keys: migrations applied, then ``python -m services.api create-key`` (a given key is kept).

The stack's secret key has every scope (tests and the dev stack mint watcher tokens of every role). With the demo
page (``make dev``), a demo flow and a publishable key for it, from the API's own origins, are created too.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.readiness import NotReadyError

DEV_ORG = "dev"
# services.api.scopes
ALL_SCOPES = ("sessions", "flows", "watch:monitor", "watch:supervisor", "watch:admin", "webhooks", "ops")
DEMO_FLOW = "demo"
DEMO_GREETING = "Hello! I'm the agentready demo agent. How can I help you today?"
VITE_DEV_PORT = 5173  # the web client's own dev server (npm run dev), another origin


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
    """Apply every schema, then create (or keep, when ``key`` already exists) ``org``'s key; return it."""
    python = sys.executable
    for service in ("session_store", "api", "webhooks"):
        await _run([python, "-m", f"services.{service}", "migrate"], env, cwd, deadline_s)
    argv = [python, "-m", "services.api", "create-key", "--org", org]
    for scope in ALL_SCOPES:
        argv += ["--scope", scope]
    if key:
        argv += ["--key", key]
    return await _run(argv, env, cwd, deadline_s)


def demo_origins(api_port: int, extra: str = "") -> list[str]:
    """The origins the dev publishable key is accepted from: the API's (it serves /demo), Vite's, and ``extra``
    (``DEV_DEMO_ORIGINS``, comma-separated)."""
    origins = [f"http://{host}:{port}" for port in (api_port, VITE_DEV_PORT) for host in ("127.0.0.1", "localhost")]
    return origins + [o.strip() for o in extra.split(",") if o.strip()]


async def create_demo_access(
    env: Mapping[str, str], cwd: Path, *, org: str, origins: list[str], key: str | None = None, deadline_s: float = 60.0
) -> tuple[str, str]:
    """The demo flow (found by name, else created) and a publishable key for it from ``origins``: (flow id, key).

    The key is the same at every start for one database and organisation (or ``key``), so restarts add none.
    """
    python = sys.executable
    flow_id = await _run(
        [python, "-m", "services.api", "ensure-flow", "--org", org, "--name", DEMO_FLOW, "--greeting", DEMO_GREETING],
        env,
        cwd,
        deadline_s,
    )
    seed = f"{env.get('DATABASE_URL', '')}|{org}".encode()
    key = key or "pk_dev_" + hashlib.sha256(seed).hexdigest()[:32]
    argv = [python, "-m", "services.api", "create-key", "--org", org, "--publishable", "--flow", flow_id, "--key", key]
    for origin in origins:
        argv += ["--origin", origin]
    return flow_id, await _run(argv, env, cwd, deadline_s)
