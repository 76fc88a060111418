""" "Start the stack if none is running": probe the API; if nothing answers, start one in this process.

The stack it starts is devstack.stack's ``demo`` profile: dev's, with the agent waiting for the user (the
frontends join their rooms, so the real readiness protocol is what is measured) and sized for the demo's
concurrency; its output goes to a log file (it would drown the progress bar), whose tail is shown if it fails.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devstack.demo.runner import DemoSetupError
from devstack.profiles import demo, demo_stack_env
from devstack.readiness import NotReadyError
from devstack.server_process import ServerStartError
from devstack.stack import found_servers, start_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
__all__ = ["DemoStack", "demo_stack_env", "ensure_stack"]


@dataclass(frozen=True)
class DemoStack:
    """The stack the demo talks to; ``log_path`` is set when the demo started it."""

    api_url: str
    started: bool
    log_path: Path | None = None


async def api_answers(api_url: str) -> bool:
    """True when ``GET {api_url}/healthz`` answers at all (any status: something is serving)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            await client.get(f"{api_url}/healthz")
    except httpx.HTTPError:
        return False
    return True


def _local_port(api_url: str) -> int:
    parts = urlsplit(api_url)
    host = parts.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        raise DemoSetupError(f"nothing answers at {api_url}, and the demo starts a stack only on this machine")
    return parts.port or 80


@asynccontextmanager
async def ensure_stack(
    api_url: str, *, api_key: str | None, concurrency: int, start_timeout_s: float = 120.0, allow_start: bool = True
) -> AsyncIterator[DemoStack]:
    """Yield the running stack at ``api_url``, starting (and afterwards stopping) one if nothing answers."""
    if await api_answers(api_url):
        yield DemoStack(api_url, started=False)
        return
    if not allow_start:
        raise DemoSetupError(f"nothing answers at {api_url}; start the stack with `make dev`")
    port = _local_port(api_url)
    data_root = REPO_ROOT / ".devdata"
    log_path = data_root / "demo-stack.log"
    data_root.mkdir(exist_ok=True)
    try:
        with found_servers(data_root) as (redis, postgres):
            try:
                stack = await start_stack(
                    demo(concurrency),
                    redis_url=redis.url,
                    database_url=postgres.url,
                    api_port=port,
                    api_key=api_key,
                    log_path=log_path,
                    ready_timeout_s=start_timeout_s,
                )
            except NotReadyError as exc:
                raise DemoSetupError(f"{exc} (the whole log: {log_path})") from exc
            async with stack:
                yield DemoStack(api_url, started=True, log_path=log_path)
    except ServerStartError as exc:
        raise DemoSetupError(f"could not start a server: {exc}") from exc
