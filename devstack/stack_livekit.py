"""A real livekit-server as one of a stack's processes (devstack.stack starts it when its LiveKitSide names one)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from contracts.routes import LIVEKIT_WEBHOOK_PATH
from devstack.livekit_server import server_argv
from devstack.livekit_side import SIM_HOST
from devstack.readiness import NotReadyError, ensure_port_free, listens, wait_for_http_ok
from devstack.server_process import free_tcp_port
from devstack.stack_handle import StackHandle

SERVER_LABEL = "livekit-server"
START_ATTEMPTS = 3  # a port taken between choosing and binding it is rare: three fresh tries make it vanishingly so


async def start_livekit_server(stack: StackHandle, binary: Path, *, check_port: bool) -> None:
    """``livekit-server --dev`` on the LiveKit URL's port (loopback; its own free RTC ports), webhooks to the API,
    as a child of the stack; return once ``GET /`` answers. One that exits at start-up is started again
    (:func:`start_livekit`): livekit-server says why on its output and exits with code 0."""
    api_port = int(stack.env["API_PORT"])
    if check_port:
        ensure_port_free(SIM_HOST, urlsplit(stack.livekit.url).port or 7880, "LiveKit; or set LIVEKIT_URL")
    webhook = f"http://{stack.env['API_HOST']}:{api_port}{LIVEKIT_WEBHOOK_PATH}"

    def argv(port: int) -> list[str]:  # fresh RTC ports each time (devstack.livekit_server.server_config)
        return server_argv(
            binary,
            None,  # the config on the command line: nothing to clean up (the dev keys only)
            port,
            api_key=stack.livekit.api_key,
            api_secret=stack.livekit.api_secret,
            webhook_urls=[webhook],
        )

    # orphaned, it must not drain (wait for its participants) forever: SIGKILL if the launcher dies
    await start_livekit(
        stack,
        SERVER_LABEL,
        argv,
        lambda url: wait_for_http_ok(url, deadline_s=30.0),
        fixed_port=check_port,
        parent_death_signal=signal.SIGKILL,
    )


async def start_livekit(
    stack: StackHandle,
    label: str,
    argv: Callable[[int], Sequence[str]],
    ready: Callable[[str], Awaitable[None]],
    *,
    fixed_port: bool,
    attempts: int = START_ATTEMPTS,
    parent_death_signal: int = signal.SIGTERM,
) -> None:
    """Start LiveKit (``argv(port)``, the port of the stack's LiveKit URL) under ``label`` and return once
    ``ready(url)`` did and the process listening there is ours. A port taken between choosing and binding it makes
    the process exit before it is ready (or another process answer in its place: ours is then stopped); it is started
    again, up to ``attempts`` times in all: on a fresh port when the stack chose it (the stack's LiveKit URL and
    LIVEKIT_URL follow; no service has started yet), on the same one when the user chose it (``fixed_port``).
    NotReadyError, with the process's last lines, when every attempt failed; ``ready``'s own error if it gave up."""
    for attempt in range(1, attempts + 1):
        port = urlsplit(stack.livekit.url).port or 7880
        pid = await stack.start_child(label, argv(port), parent_death_signal=parent_death_signal, trial=True)
        exited = asyncio.ensure_future(stack.group.wait_exit(label))
        up = asyncio.ensure_future(ready(stack.livekit.url))
        try:
            await asyncio.wait({exited, up}, return_when=asyncio.FIRST_COMPLETED)
            ended = exited.done()
        finally:
            for pending in (exited, up):  # also when this wait itself is cancelled
                if not pending.done():
                    pending.cancel()
        why = ""
        if not ended:
            up.result()  # ready, or its error (its deadline passed with the process still running)
            if listens(pid, port) and stack.group.keep(label):
                return
            # what answered is another process, which took the port first: ours cannot bind it
            why = f"another process answers on port {port}; "
            with contextlib.suppress(ProcessLookupError):  # it may have exited already
                stack.kill(label)
        gone = await stack.group.wait_exit(label)
        last = " / ".join(gone.last_lines[-3:]) or "no output"
        why += f"{label} exited with code {gone.returncode} at start-up on port {port} (last lines: {last})"
        if attempt == attempts:
            raise NotReadyError(f"{why}; {attempts} attempts in all")
        if not fixed_port:
            url = f"http://{SIM_HOST}:{free_tcp_port()}"
            stack.livekit = replace(stack.livekit, url=url)
            stack.env["LIVEKIT_URL"] = url
        again = urlsplit(stack.livekit.url).port
        stack.out.announce(f"{why}: starting it again on port {again} (attempt {attempt + 1} of {attempts})")


async def wait_for_output(stack: StackHandle, label: str, needle: str, *, deadline_s: float) -> None:
    """Return once a line of ``label`` containing ``needle`` was printed; NotReadyError after ``deadline_s``.

    With a log file per process (``log_dir`` output, the benchmark's) the child writes there, not to the stack's
    output: the file is read instead."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    prefix = f"{label} | "
    log_file = stack.log_dir / f"{label}.log" if stack.log_dir is not None else None
    while loop.time() < end:
        if any(line.startswith(prefix) and needle in line for line in list(stack.out.kept)):
            return
        if log_file is not None and _file_has(log_file, needle):
            return
        await asyncio.sleep(0.1)  # polling the stack's output, bounded by deadline_s
    raise NotReadyError(f"no line with {needle!r} from {label} within {deadline_s:.0f}s")


def _file_has(path: Path, needle: str) -> bool:
    """``needle`` is in the file (a missing file has nothing); the benchmark's log files are small at start-up."""
    try:
        return needle in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return False
