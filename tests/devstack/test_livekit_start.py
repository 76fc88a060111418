"""devstack.stack_livekit.start_livekit: LiveKit started as a stack's child, again on a fresh port when the one chosen
was taken between choosing and binding it (a real simulator process; a squatting socket takes the port)."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from devstack.livekit_side import SIM_HOST, simulator
from devstack.output import StackOutput
from devstack.processes import ProcessGroup
from devstack.profiles import Profile, SimulatorOptions
from devstack.readiness import NotReadyError, wait_for_tcp
from devstack.server_process import free_tcp_port
from devstack.stack_handle import StackHandle
from devstack.stack_livekit import START_ATTEMPTS, start_livekit


def sim_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "devstack.livekit_sim", *SimulatorOptions().argv(SIM_HOST, port)]


async def sim_ready(url: str) -> None:
    await wait_for_tcp(SIM_HOST, urlsplit(url).port or 80, deadline_s=30.0)


@pytest.fixture
async def stack() -> AsyncIterator[StackHandle]:
    livekit = simulator(free_tcp_port())
    out = StackOutput(200)
    handle = StackHandle(
        Profile(name="start-test"), "", livekit, {"LIVEKIT_URL": livekit.url}, ProcessGroup(out.sink), (), out
    )
    try:
        yield handle
    finally:
        await handle.stop()


@contextmanager
def squatter(port: int) -> Iterator[socket.socket]:
    """Another process's listener on ``port``: it accepts connections (a readiness check would believe it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((SIM_HOST, port))
        sock.listen(8)
        yield sock
    finally:
        sock.close()


async def test_a_free_port_is_used_as_chosen(stack: StackHandle) -> None:
    chosen = stack.livekit.url
    await start_livekit(stack, "livekit-sim", sim_argv, sim_ready, fixed_port=False)
    assert stack.livekit.url == chosen and stack.env["LIVEKIT_URL"] == chosen
    assert stack.group.running() == ["livekit-sim"]


async def test_a_port_taken_meanwhile_is_given_up_for_a_fresh_one(stack: StackHandle) -> None:
    """The squatter answers the readiness check at once; the simulator cannot bind: it is not taken for LiveKit."""
    taken = urlsplit(stack.livekit.url).port or 0
    with squatter(taken):
        await start_livekit(stack, "livekit-sim", sim_argv, sim_ready, fixed_port=False)
        port = urlsplit(stack.livekit.url).port
        assert port != taken and stack.env["LIVEKIT_URL"] == stack.livekit.url
        await sim_ready(stack.livekit.url)  # the simulator, on its new port
    assert stack.group.running() == ["livekit-sim"]
    retried = [line for line in stack.output if "starting it again" in line]
    assert len(retried) == 1 and f"port {taken}" in retried[0] and f"on port {port}" in retried[0], retried
    # the failed attempt did not end the stack: a later exit still would
    assert not (await _first_exit_within(stack, 0.2))


async def test_a_process_that_keeps_exiting_at_start_up_is_tried_a_bounded_number_of_times(stack: StackHandle) -> None:
    """livekit-server says why on its output and exits with code 0: the error carries its last lines."""
    starts: list[int] = []

    def failing(port: int) -> list[str]:
        starts.append(port)
        return [sys.executable, "-c", f"print('listen tcp 127.0.0.1:{port}: bind: address already in use')"]

    with pytest.raises(NotReadyError) as failed:
        await start_livekit(stack, "livekit-server", failing, sim_ready, fixed_port=False)
    assert len(starts) == START_ATTEMPTS and len(set(starts)) == START_ATTEMPTS  # a fresh port each time
    message = str(failed.value)
    assert "exited with code 0" in message and "address already in use" in message, message
    assert f"{START_ATTEMPTS} attempts" in message


async def test_the_users_own_port_is_tried_again_as_it_is(stack: StackHandle) -> None:
    starts: list[int] = []

    def failing(port: int) -> list[str]:
        starts.append(port)
        return [sys.executable, "-c", "raise SystemExit(1)"]

    with pytest.raises(NotReadyError, match="code 1"):
        await start_livekit(stack, "livekit-server", failing, sim_ready, fixed_port=True, attempts=2)
    assert starts == [starts[0]] * 2
    assert stack.env["LIVEKIT_URL"] == stack.livekit.url and urlsplit(stack.livekit.url).port == starts[0]


async def _first_exit_within(stack: StackHandle, seconds: float) -> bool:
    waiting = asyncio.ensure_future(stack.group.wait_first_exit())
    done, _ = await asyncio.wait({waiting}, timeout=seconds)
    waiting.cancel()
    return bool(done)
