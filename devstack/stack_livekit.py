"""A real livekit-server as one of a stack's processes (devstack.stack starts it when its LiveKitSide names one)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from urllib.parse import urlsplit

from contracts.routes import LIVEKIT_WEBHOOK_PATH
from devstack.livekit_server import server_argv
from devstack.livekit_side import SIM_HOST
from devstack.readiness import NotReadyError, ensure_port_free, wait_for_http_ok
from devstack.stack_handle import StackHandle

SERVER_LABEL = "livekit-server"


async def start_livekit_server(stack: StackHandle, binary: Path, *, check_port: bool) -> None:
    """``livekit-server --dev`` on the LiveKit URL's port (loopback; its own free RTC ports), webhooks to the API,
    as a child of the stack; return once ``GET /`` answers."""
    livekit, api_port = stack.livekit, int(stack.env["API_PORT"])
    port = urlsplit(livekit.url).port or 7880
    if check_port:
        ensure_port_free(SIM_HOST, port, "LiveKit; or set LIVEKIT_URL")
    webhook = f"http://{stack.env['API_HOST']}:{api_port}{LIVEKIT_WEBHOOK_PATH}"
    argv = server_argv(
        binary,
        None,  # the config on the command line: nothing to clean up (the dev keys only)
        port,
        api_key=livekit.api_key,
        api_secret=livekit.api_secret,
        webhook_urls=[webhook],
    )
    # orphaned, it must not drain (wait for its participants) forever: SIGKILL if the launcher dies
    await stack.start_child(SERVER_LABEL, argv, parent_death_signal=signal.SIGKILL)
    await wait_for_http_ok(livekit.url, deadline_s=30.0)


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
