"""Waits with deadlines for a child to answer: a TCP port, an HTTP health endpoint; and whose the answer is."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection

import httpx
import psutil

_POLL_S = 0.1


class NotReadyError(RuntimeError):
    """Something did not answer before its deadline."""


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Raise NotReadyError if something already listens on ``host:port`` (a readiness check would ask it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            raise NotReadyError(f"{host}:{port} is already in use; stop what listens there ({what} needs it)")


def listens(pid: int, port: int) -> bool:
    """Process ``pid`` (or a child of it) holds the listening TCP socket of ``port``: what answers there is that
    process, not another that took the port first. True when this user may not look (nothing to tell it by)."""
    try:
        process = psutil.Process(pid)
        owners = [process, *process.children(recursive=True)]
        return any(
            conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
            for owner in owners
            for conn in owner.net_connections(kind="tcp")
        )
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


async def wait_for_tcp(host: str, port: int, *, deadline_s: float) -> None:
    """Return once ``host:port`` accepts a connection; raise NotReadyError after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while loop.time() < end:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
        except (OSError, TimeoutError):
            await asyncio.sleep(_POLL_S)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise NotReadyError(f"nothing listens on {host}:{port} after {deadline_s:.0f}s")


async def wait_for_http_ok(url: str, *, deadline_s: float) -> None:
    """Return once ``GET url`` answers 2xx; raise NotReadyError (with the last answer) after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    last = "no answer"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while loop.time() < end:
            try:
                response = await client.get(url)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return
                last = f"HTTP {response.status_code}"
            await asyncio.sleep(_POLL_S)
    raise NotReadyError(f"GET {url} did not succeed within {deadline_s:.0f}s (last: {last})")


async def wait_for_sim_worker(simulator_url: str, *, deadline_s: float, names: Collection[str] = ()) -> None:
    """Return once the LiveKit simulator lists a registered agent worker (``GET /sim/state``), one per name if given."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while loop.time() < end:
            try:
                response = await client.get(f"{simulator_url}/sim/state")
                workers = response.json().get("workers") if response.is_success else None
                if workers and set(names) <= {worker.get("agent_name") for worker in workers}:
                    return
            except (httpx.TransportError, ValueError):
                pass  # not up yet, or not JSON yet: ask again until the deadline
            await asyncio.sleep(_POLL_S)
    which = f" named {sorted(names)}" if names else ""
    raise NotReadyError(
        f"no agent worker{which} registered with the simulator at {simulator_url} within {deadline_s:.0f}s"
    )
