""" "Start the stack if none is running": probe the API; if nothing answers, run ``python -m devstack`` as a child.

The child's output goes to a log file (it would drown the progress bar); the tail is shown if it fails.
The stack the demo starts runs the agent with ``AGENT_WAIT_FOR_USER=true``: the frontends join their rooms,
so the real readiness protocol (agent waits for the user, then greets, then says ready) is what is measured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from devstack.demo.runner import DemoSetupError, auth_headers
from devstack.processes import ChildSpec, ProcessGroup
from devstack.readiness import NotReadyError, wait_for_http_ok, wait_for_sim_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
_POLL_S = 0.2
_STOP_TIMEOUT_S = 30.0


def demo_stack_env(concurrency: int) -> dict[str, str]:
    """What the demo needs from a stack: the agent waits for the user (the real readiness protocol).

    The agent's load counts jobs against a capacity instead of the laptop's CPU (which the whole stack
    shares), executors are prewarmed for a burst (livekit-agents answers availability only once it has one),
    and the organisation may hold every session the frontends keep open.
    """
    capacity = str(max(100, 4 * concurrency))
    return {
        "AGENT_WAIT_FOR_USER": "true",
        "AGENT_MAX_JOBS": capacity,
        "AGENT_NUM_IDLE_PROCESSES": str(min(concurrency, 25)),  # a burst is accepted without spawning first
        "MAX_OPEN_SESSIONS_PER_ORG": capacity,
    }


@dataclass(frozen=True)
class StackHandle:
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


async def _key_accepted(api_url: str, api_key: str | None, *, deadline_s: float) -> None:
    """Wait until an authenticated request is not refused (the launcher may create the key after the API is up)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    async with httpx.AsyncClient(base_url=api_url, timeout=2.0, headers=auth_headers(api_key)) as client:
        while loop.time() < end:
            try:
                if (await client.get("/api/flows")).status_code != 401:
                    return
            except httpx.HTTPError:
                pass  # the API is restarting or busy: ask again until the deadline
            await asyncio.sleep(_POLL_S)
    raise NotReadyError(f"the API still refuses the demo's key after {deadline_s:.0f}s")


async def _stack_ready(api_url: str, api_key: str | None, simulator_url: str | None, deadline_s: float) -> None:
    await wait_for_http_ok(f"{api_url}/healthz", deadline_s=deadline_s)
    await _key_accepted(api_url, api_key, deadline_s=deadline_s)
    if simulator_url is not None:  # the first job is dropped unless the agent's worker is registered
        await wait_for_sim_worker(simulator_url, deadline_s=deadline_s)


def launcher_env(environ: dict[str, str], api_port: int, api_key: str | None, concurrency: int) -> dict[str, str]:
    """The launcher's environment: the demo's needs (the user's own settings win, but the agent waits)."""
    env = {**demo_stack_env(concurrency), **environ, "AGENT_WAIT_FOR_USER": "true", "API_PORT": str(api_port)}
    if api_key:
        env["DEV_API_KEY"] = api_key
    return env


@asynccontextmanager
async def ensure_stack(
    api_url: str, *, api_key: str | None, concurrency: int, start_timeout_s: float = 120.0, allow_start: bool = True
) -> AsyncIterator[StackHandle]:
    """Yield the running stack at ``api_url``, starting (and afterwards stopping) one if nothing answers."""
    if await api_answers(api_url):
        yield StackHandle(api_url, started=False)
        return
    if not allow_start:
        raise DemoSetupError(f"nothing answers at {api_url}; start the stack with `make dev`")
    from devstack.dev import SIMULATOR_HOST, SIMULATOR_PORT

    port = _local_port(api_url)
    env = launcher_env(dict(os.environ), port, api_key, concurrency)
    simulator_url = None if "LIVEKIT_URL" in env else f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}"
    log_path = REPO_ROOT / ".devdata" / "demo-stack.log"
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        group = ProcessGroup(lambda _label, line: print(line, file=log, flush=True), stop_timeout_s=_STOP_TIMEOUT_S)
        argv = [sys.executable, "-m", "devstack", "--api-port", str(port)]
        try:
            await group.start(ChildSpec("devstack", argv, env=env, cwd=REPO_ROOT))
            await _first_of(_stack_ready(api_url, api_key, simulator_url, start_timeout_s), group, log_path)
            yield StackHandle(api_url, started=True, log_path=log_path)
        finally:
            await group.stop()


async def _first_of(step: Awaitable[None], group: ProcessGroup, log_path: Path) -> None:
    """Run ``step``; if the launcher exits first (or the step fails), raise DemoSetupError with its log's tail."""
    ready = asyncio.ensure_future(step)
    exited = asyncio.ensure_future(group.wait_first_exit())
    await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        exited.cancel()
        failure = ready.exception()
        if failure is None:
            return
        why = str(failure)
    else:
        ready.cancel()
        why = f"the launcher exited with code {exited.result().returncode}"
    tail = "\n".join(_tail(log_path))
    raise DemoSetupError(f"the stack did not come up ({why}); last lines of {log_path}:\n{tail}")


def _tail(path: Path, lines: int = 30) -> list[str]:
    """The last lines of a (small) log file."""
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
