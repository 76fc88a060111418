"""The one stack launcher: LiveKit (simulator unless given), the four services as processes, an API key.

``start_stack(profile, redis_url=..., database_url=...)`` starts what devstack.profiles describes for one use,
waits until the API answers ``/healthz`` and the agent's worker is registered, and returns a StackHandle (URLs,
environment, pids, API key, output, helpers to start or kill a process); ``async with`` it to stop it. Redis and
PostgreSQL are given by URL; ``found_servers`` finds them as devstack does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from contracts.routes import LIVEKIT_WEBHOOK_PATH
from devstack.api_key import create_api_key, create_demo_access, demo_origins
from devstack.livekit_side import SIM_HOST, LiveKitSide, discovered, from_environment, simulator
from devstack.output import StackOutput
from devstack.processes import ChildExit, ProcessGroup
from devstack.profiles import COMMON_ENV, Profile
from devstack.readiness import NotReadyError, ensure_port_free, wait_for_http_ok, wait_for_sim_worker, wait_for_tcp
from devstack.server_process import free_tcp_port
from devstack.servers import ServerHandle, postgres_server, redis_server
from devstack.stack_handle import REPO_ROOT, SERVICES, StackHandle, service_labels
from devstack.stack_livekit import START_ATTEMPTS, start_livekit, start_livekit_server, wait_for_output

__all__ = [
    "SERVICES",
    "StackExitedError",
    "StackHandle",
    "StartInterrupted",
    "found_servers",
    "service_labels",
    "stack_env",
    "start_stack",
]
SIM_LABEL = "livekit-sim"
T = TypeVar("T")


class StackExitedError(NotReadyError):
    """A process ended the stack (or its crash loop did) while it was starting."""

    def __init__(self, exit_: ChildExit) -> None:
        """``exit_`` is the exit that ended it."""
        super().__init__(f"{exit_.label} exited with code {exit_.returncode} while the stack was starting")
        self.exit = exit_


class StartInterrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM) while the stack was starting."""


def stack_env(
    profile: Profile,
    environ: Mapping[str, str],
    *,
    redis_url: str,
    database_url: str,
    livekit: LiveKitSide,
    api_port: int,
    sim_port: int,
) -> dict[str, str]:
    """The services' environment: COMMON_ENV and the profile's over (or, ``environ_wins``, under) ``environ``."""
    own = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
        "AGENT_ROOM_BACKEND": "simulator" if livekit.simulated else "livekit",  # a real server: WebRTC rooms
        **COMMON_ENV,
        **({"LOG_LEVEL": profile.log_level} if profile.log_level else {}),
        **{name: value.format(api_port=api_port, sim_port=sim_port) for name, value in profile.env.items()},
    }
    env = {**own, **environ} if profile.environ_wins else {**environ, **own}
    env.update(profile.pinned)
    env["API_PORT"] = str(api_port)  # a CLI option already gave API_PORT from the environment its turn
    if not (profile.environ_wins and environ.get("API_INTERNAL_URL")):
        env["API_INTERNAL_URL"] = f"http://{env['API_HOST']}:{api_port}"  # the agent's flow init
    return env


@contextmanager
def found_servers(data_root: Path | None = None) -> Iterator[tuple[ServerHandle, ServerHandle]]:
    """Redis and PostgreSQL as devstack.servers finds them; with ``data_root`` their data stays there."""
    redis_dir, pg_dir = (data_root / "redis", data_root / "postgres") if data_root else (None, None)
    with redis_server(redis_dir, persistent=data_root is not None) as redis, postgres_server(pg_dir) as postgres:
        yield redis, postgres


async def start_stack(
    profile: Profile,
    *,
    redis_url: str,
    database_url: str,
    environ: Mapping[str, str] | None = None,
    services: Sequence[str] = SERVICES,
    api_port: int | None = None,
    livekit: LiveKitSide | None = None,
    api_key: str | None = None,
    log_path: Path | None = None,
    ready_timeout_s: float = 60.0,
    interrupt: asyncio.Event | None = None,
) -> StackHandle:
    """Start the stack ``profile`` describes; return once the API answers and the agent's worker is registered.

    ``environ``: the environment the profile is layered with (default os.environ). ``livekit``: which LiveKit
    (default: the simulator, or LIVEKIT_URL for profiles that honour it). ``api_key``: kept if given.
    ``log_path``: the log file (``log_file`` output) or folder (``log_dir``). ``interrupt``: set it to abandon
    the start (StartInterrupted). A process that ends the stack meanwhile raises StackExitedError.
    """
    environ = dict(os.environ) if environ is None else environ
    port = api_port or profile.api_port or free_tcp_port()
    sim_port = profile.sim_port or free_tcp_port()
    if livekit is None:
        if profile.discover_livekit:
            livekit = discovered(environ, sim_port)
        else:
            livekit = from_environment(environ, sim_port) if profile.external_livekit else simulator(sim_port)
    env = stack_env(
        profile,
        environ,
        redis_url=redis_url,
        database_url=database_url,
        livekit=livekit,
        api_port=port,
        sim_port=sim_port,
    )
    out = StackOutput.of(profile.output, profile.memory_lines, log_path if profile.output == "log_file" else None)
    group = ProcessGroup(
        out.sink, stop_timeout_s=profile.stop_timeout_s, restart=profile.restart, announce=out.announce
    )
    log_dir = log_path if profile.output == "log_dir" else None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    stack = StackHandle(profile, f"http://{env['API_HOST']}:{port}", livekit, env, group, services, out, log_dir)
    try:
        await _start(stack, api_key, ready_timeout_s, interrupt, check_api_port=bool(api_port or profile.api_port))
    except BaseException as exc:
        await stack.stop()  # whatever went wrong, leave no child behind
        if isinstance(exc, NotReadyError) and profile.output != "console":  # else the lines are on the screen
            raise NotReadyError(f"the stack did not come up: {exc}\nlast lines:\n{stack.tail()}") from exc
        raise
    return stack


async def _start(
    stack: StackHandle,
    api_key: str | None,
    ready_timeout_s: float,
    interrupt: asyncio.Event | None,
    *,
    check_api_port: bool,
) -> None:
    """LiveKit (the simulator or a livekit-server), API key (migrations first), services; then the readiness
    waits."""

    async def step(awaitable: Awaitable[T]) -> T:
        return await _unless_ended(awaitable, stack.group, interrupt)

    profile, livekit, api_port = stack.profile, stack.livekit, int(stack.env["API_PORT"])
    if check_api_port:
        ensure_port_free(stack.env["API_HOST"], api_port, "the API; or pass --api-port")
    if livekit.simulated:
        if profile.sim_port:
            ensure_port_free(SIM_HOST, urlsplit(livekit.url).port or 80, "the LiveKit simulator; or set LIVEKIT_URL")
        # LiveKit's signed webhooks (room_finished, participant_left) reach the API, as a deployment configures them
        webhook = ["--webhook-url", f"http://{stack.env['API_HOST']}:{api_port}{LIVEKIT_WEBHOOK_PATH}"]

        def sim_argv(port: int) -> list[str]:
            return [sys.executable, "-m", "devstack.livekit_sim", *profile.simulator.argv(SIM_HOST, port), *webhook]

        def sim_ready(url: str) -> Awaitable[None]:
            return wait_for_tcp(SIM_HOST, urlsplit(url).port or 80, deadline_s=30.0)

        # the user's port (profile.sim_port) was checked free just now: a second try on it would not help
        attempts = 1 if profile.sim_port else START_ATTEMPTS
        await step(
            start_livekit(stack, SIM_LABEL, sim_argv, sim_ready, fixed_port=bool(profile.sim_port), attempts=attempts)
        )
    elif livekit.server is not None:
        await step(start_livekit_server(stack, livekit.server, check_port=bool(profile.sim_port)))
    livekit = stack.livekit  # its port may have changed (a port taken between choosing and binding it)
    org = profile.org.format(api_port=api_port, unique=uuid.uuid4().hex[:8])
    stack.api_key = await step(create_api_key(stack.env, REPO_ROOT, org=org, key=api_key))
    if profile.demo_page:  # before the API starts: it serves both to the demo page (/demo/config.json)
        origins = demo_origins(api_port, stack.env.get("DEV_DEMO_ORIGINS", ""))
        pk = stack.env.get("DEV_PUBLISHABLE_KEY") or None
        demo = create_demo_access(stack.env, REPO_ROOT, org=org, origins=origins, key=pk)
        flow_id, stack.publishable_key = await step(demo)
        stack.env.update(DEV_PUBLISHABLE_KEY=stack.publishable_key, DEV_DEMO_FLOW_ID=flow_id)
    for service, label in service_labels(stack.services, profile.replicas):
        await stack.start_service(service, label)
    await step(wait_for_http_ok(f"{stack.api_url}/healthz", deadline_s=ready_timeout_s))
    if livekit.simulated and "agent" in stack.services:  # else the first job is dropped: no worker to take it
        await step(wait_for_sim_worker(livekit.url, deadline_s=ready_timeout_s))
    elif "agent" in stack.services:  # a real server lists no workers: the agent says when it has registered
        await step(wait_for_output(stack, "agent", "worker_registered", deadline_s=ready_timeout_s))


async def _unless_ended(step: Awaitable[T], group: ProcessGroup, interrupt: asyncio.Event | None) -> T:
    """Run ``step`` unless the group ends (StackExitedError) or ``interrupt`` is set (StartInterrupted) first."""
    task = asyncio.ensure_future(step)
    ended = asyncio.ensure_future(group.wait_first_exit())
    stop = asyncio.ensure_future(interrupt.wait()) if interrupt is not None else None
    try:
        await asyncio.wait({task, ended, *([stop] if stop else [])}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, ended, stop):  # also when this wait itself is cancelled
            if pending is not None and not pending.done():
                pending.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    if ended.done() and not ended.cancelled():
        raise StackExitedError(ended.result())
    raise StartInterrupted
