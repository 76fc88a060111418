"""``python -m devstack``: Redis, PostgreSQL, the LiveKit simulator and the four services, as one stack.

Servers are found as in devstack.servers (data kept in ``<repo>/.devdata/``); the rest is devstack.stack's
``dev`` profile: labelled output, services supervised like the deploy files' ``restart: unless-stopped``
(a service that exits is reported and restarted with backoff; one that keeps crashing at start-up stops
the stack, loudly and with a non-zero code).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from devstack.banner import StackInfo, print_banner
from devstack.output import LabelledConsole
from devstack.processes import ChildExit
from devstack.profiles import DEV, Profile
from devstack.readiness import NotReadyError
from devstack.server_process import ServerStartError
from devstack.servers import ServerHandle
from devstack.stack import SERVICES, StackExitedError, StartInterrupted, found_servers, start_stack
from devstack.stack import service_labels as labels_of

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DevOptions:
    """How to run the stack."""

    repo_root: Path = REPO_ROOT
    clean: bool = False
    api_port: int = 8000
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0


def dev_profile(environ: Mapping[str, str], options: DevOptions = DevOptions()) -> Profile:
    """The dev profile with ``DEV_REPLICAS`` (default 1) processes of each stream consumer."""
    replicas = max(1, int(environ.get("DEV_REPLICAS", "1") or "1"))
    return replace(DEV, replicas=replicas, api_port=options.api_port, stop_timeout_s=options.stop_timeout_s)


def service_labels(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(service, label)`` of every service process ``python -m devstack`` starts."""
    return labels_of(SERVICES, dev_profile(environ).replicas)


def run_dev(options: DevOptions) -> int:
    """Run the stack until Ctrl-C / SIGTERM (exit code 0) or a crash loop (non-zero); return the code."""
    out = LabelledConsole()
    data_root = options.repo_root / ".devdata"
    if options.clean and data_root.exists():
        shutil.rmtree(data_root)
        out.announce(f"removed {data_root}", style="yellow")
    data_root.mkdir(exist_ok=True)
    # SIGTERM while servers start: unwind the context managers instead of dying with servers running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        out.announce("starting Redis and PostgreSQL ...", style="dim")
        with found_servers(data_root) as (redis, postgres):
            code = asyncio.run(_run_stack(options, out, redis, postgres))
            out.announce("stopping Redis and PostgreSQL ...", style="dim")
            return code
    except ServerStartError as exc:
        out.announce(f"could not start a server: {exc}", style="bold red")
        return 1


def _crash_code(out: LabelledConsole, exit_: ChildExit) -> int:
    out.announce(f"✖ {exit_.label} exited with code {exit_.returncode}: stopping the stack", style="bold red")
    return exit_.returncode if exit_.returncode > 0 else 1


async def _run_stack(options: DevOptions, out: LabelledConsole, redis: ServerHandle, postgres: ServerHandle) -> int:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        stack = await start_stack(
            dev_profile(os.environ, options),
            redis_url=redis.url,
            database_url=postgres.url,
            api_key=os.environ.get("DEV_API_KEY"),
            ready_timeout_s=options.ready_timeout_s,
            interrupt=stop_requested,
        )
    except StartInterrupted:
        out.announce("stopped before the stack was ready", style="dim")
        return 0
    except StackExitedError as exc:
        return _crash_code(out, exc.exit)
    except NotReadyError as exc:
        out.announce(f"the stack did not come up: {exc}", style="bold red")
        return 1
    info = StackInfo(stack.api_url, stack.livekit, redis, postgres, stack.api_key, stack.publishable_key, stack.metrics)
    print_banner((stack.out.console or out).console, info)
    ended = asyncio.ensure_future(stack.group.wait_first_exit())
    stopped = asyncio.ensure_future(stop_requested.wait())
    await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
    code = _crash_code(out, ended.result()) if ended.done() and not stopped.done() else 0
    if code == 0:
        out.announce("stopping the stack ...", style="dim")
    ended.cancel()
    stopped.cancel()
    for exit_ in await stack.stop():
        out.announce(f"{exit_.label} stopped (code {exit_.returncode})", style="dim")
    return code
