"""``python -m devstack``: Redis, PostgreSQL, the LiveKit simulator and the four services, as one stack.

Servers are found as in devstack.servers (data kept in ``<repo>/.devdata/``); every other part is a child
process with labelled output. The first child that exits stops the stack, loudly and with a non-zero code.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from devstack.api_key import create_dev_api_key
from devstack.banner import StackInfo, print_banner
from devstack.output import LabelledConsole
from devstack.processes import ChildExit, ChildSpec, ProcessGroup
from devstack.readiness import (
    NotReadyError,
    ensure_port_free,
    wait_for_http_ok,
    wait_for_sim_worker,
    wait_for_tcp,
)
from devstack.server_process import ServerStartError
from devstack.servers import ServerHandle, postgres_server, redis_server

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("session_store", "dispatcher", "agent", "api")
CONSUMERS = ("session_store", "dispatcher")  # stream consumers: DEV_REPLICAS=N runs N of each, one group
SIMULATOR_HOST, SIMULATOR_PORT = "127.0.0.1", 7880


@dataclass(frozen=True)
class DevOptions:
    """How to run the stack."""

    repo_root: Path = REPO_ROOT
    clean: bool = False
    api_port: int = 8000
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0


class _Interrupted(Exception):
    """A child exited or a stop was requested while the stack was starting."""


def service_env(
    environ: Mapping[str, str],
    redis: ServerHandle,
    postgres: ServerHandle,
    livekit_url: str,
    api_port: int,
    *,
    simulated: bool = True,
) -> dict[str, str]:
    """The services' environment: dev defaults, overridden by every variable the user already set.

    Against a real LiveKit server (``simulated`` False) the agent joins rooms over WebRTC.
    """
    defaults = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": postgres.url,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        "DEV_MODE": "true",
        "AGENT_ROOM_BACKEND": "simulator" if simulated else "livekit",
        "AGENT_JOB_EXECUTOR": "thread",
        "AGENT_LOAD_THRESHOLD": "inf",  # a laptop's CPU load must not make the only worker refuse jobs
        "AGENT_HTTP_PORT": "0",
        "AGENT_WAIT_FOR_USER": "false",  # so the curl demo reaches "ready" with no frontend in the room
        "API_HOST": "127.0.0.1",
        "LOG_JSON": "false",  # children write to a pipe, which would otherwise mean JSON
        "PYTHONUNBUFFERED": "1",
    }
    env = {**defaults, **environ}
    env["API_PORT"] = str(api_port)  # the CLI option already gave API_PORT from the environment its turn
    env.setdefault("API_INTERNAL_URL", f"http://{env['API_HOST']}:{api_port}")  # the agent's flow init
    return env


def _label(service: str) -> str:
    return service.replace("_", "-")


def service_labels(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(service, label)`` of every service process: ``DEV_REPLICAS`` (default 1) of each consumer."""
    replicas = max(1, int(environ.get("DEV_REPLICAS", "1") or "1"))
    labels = []
    for service in SERVICES:
        count = replicas if service in CONSUMERS else 1
        for i in range(1, count + 1):
            labels.append((service, _label(service) if count == 1 else f"{_label(service)}-{i}"))
    return labels


def run_dev(options: DevOptions) -> int:
    """Run the stack until Ctrl-C / SIGTERM (exit code 0) or a child's exit (non-zero); return the code."""
    out = LabelledConsole()
    data_root = options.repo_root / ".devdata"
    if options.clean and data_root.exists():
        shutil.rmtree(data_root)
        out.announce(f"removed {data_root}", style="yellow")
    data_root.mkdir(exist_ok=True)
    # SIGTERM while servers start: unwind the context managers instead of dying with servers running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with ExitStack() as servers:
            out.announce("starting Redis and PostgreSQL ...", style="dim")
            redis = servers.enter_context(redis_server(data_root / "redis", persistent=True))
            postgres = servers.enter_context(postgres_server(data_root / "postgres"))
            code = asyncio.run(_run_children(options, out, redis, postgres))
            out.announce("stopping Redis and PostgreSQL ...", style="dim")
            return code
    except ServerStartError as exc:
        out.announce(f"could not start a server: {exc}", style="bold red")
        return 1


async def _run_children(options: DevOptions, out: LabelledConsole, redis: ServerHandle, postgres: ServerHandle) -> int:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    group = ProcessGroup(out, stop_timeout_s=options.stop_timeout_s)
    crashed = asyncio.create_task(group.wait_first_exit())
    stopped = asyncio.create_task(stop_requested.wait())
    failed = False
    try:
        await _start(options, out, group, redis, postgres, crashed, stopped)
        await asyncio.wait({crashed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except _Interrupted:
        pass
    except NotReadyError as exc:
        out.announce(f"the stack did not come up: {exc}", style="bold red")
        failed = True
    except BaseException:
        await group.stop()  # whatever went wrong, leave no child behind
        raise
    return await _shutdown(out, group, crashed, stopped, failed=failed)


async def _start(
    options: DevOptions,
    out: LabelledConsole,
    group: ProcessGroup,
    redis: ServerHandle,
    postgres: ServerHandle,
    crashed: asyncio.Task[ChildExit],
    stopped: asyncio.Task[bool],
) -> None:
    """Start the simulator (unless LIVEKIT_URL is set) and the services; wait for the API; print the banner."""
    simulated = "LIVEKIT_URL" not in os.environ
    livekit_url = os.environ.get("LIVEKIT_URL", f"http://{SIMULATOR_HOST}:{SIMULATOR_PORT}")
    env = service_env(os.environ, redis, postgres, livekit_url, options.api_port, simulated=simulated)
    api_url = f"http://{env['API_HOST']}:{env['API_PORT']}"
    ensure_port_free(env["API_HOST"], int(env["API_PORT"]), "the API; or pass --api-port")
    if simulated:
        ensure_port_free(SIMULATOR_HOST, SIMULATOR_PORT, "the LiveKit simulator; or set LIVEKIT_URL")
        argv = [sys.executable, "-m", "devstack.livekit_sim", "--host", SIMULATOR_HOST, "--port", str(SIMULATOR_PORT)]
        await group.start(ChildSpec("livekit-sim", argv, env=env, cwd=options.repo_root))
        await _unless_interrupted(wait_for_tcp(SIMULATOR_HOST, SIMULATOR_PORT, deadline_s=20.0), crashed, stopped)
    api_key = await create_dev_api_key(env, options.repo_root)  # migrations first, then the key
    for service, label in service_labels(os.environ):
        argv = [sys.executable, "-m", f"services.{service}"]
        await group.start(ChildSpec(label, argv, env=env, cwd=options.repo_root))
    await _unless_interrupted(
        wait_for_http_ok(f"{api_url}/healthz", deadline_s=options.ready_timeout_s), crashed, stopped
    )
    if simulated:  # the demo needs the agent's worker registered, or its first job is dropped
        worker = wait_for_sim_worker(livekit_url, deadline_s=options.ready_timeout_s)
        await _unless_interrupted(worker, crashed, stopped)
    print_banner(out.console, StackInfo(api_url, livekit_url, simulated, redis, postgres, api_key))


async def _unless_interrupted(
    step: Awaitable[None], crashed: asyncio.Task[ChildExit], stopped: asyncio.Task[bool]
) -> None:
    """Run ``step`` unless a child exits or a stop is requested first (then raise _Interrupted)."""
    task = asyncio.ensure_future(step)
    await asyncio.wait({task, crashed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if crashed.done() or stopped.done():
        task.cancel()
        raise _Interrupted
    task.result()


async def _shutdown(
    out: LabelledConsole,
    group: ProcessGroup,
    crashed: asyncio.Task[ChildExit],
    stopped: asyncio.Task[bool],
    *,
    failed: bool,
) -> int:
    """Stop every child; report the crash (if that is what ended the run) and return the exit code."""
    code = 1 if failed else 0
    if crashed.done() and not stopped.done():
        exit_ = crashed.result()
        out.announce(f"✖ {exit_.label} exited with code {exit_.returncode}: stopping the stack", style="bold red")
        code = exit_.returncode if exit_.returncode > 0 else 1
    else:
        out.announce("stopping the stack ...", style="dim")
    crashed.cancel()
    stopped.cancel()
    await group.stop([label for _, label in service_labels(os.environ)])  # first: they never see the simulator go
    for exit_ in await group.stop():
        out.announce(f"{exit_.label} stopped (code {exit_.returncode})", style="dim")
    return code
