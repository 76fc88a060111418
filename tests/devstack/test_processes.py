"""devstack.processes: labelled output, the first unexpected exit, and a stop that leaves no orphans."""

from __future__ import annotations

import asyncio
import sys

import psutil
import pytest

from devstack.processes import ChildExit, ChildSpec, ProcessGroup
from tests.polling import wait_until

pytestmark = pytest.mark.timeout(60)

SLEEPER = "import time; print('{name} up', flush=True); time.sleep(120)"
PARENT_OF_GRANDCHILD = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print('grandchild', g.pid, flush=True)\n"
    "time.sleep(120)\n"
)
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('stubborn up', flush=True)\n"
    "time.sleep(120)\n"
)


class Lines:
    """A ProcessGroup sink that keeps every (label, line)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, label: str, line: str) -> None:
        self.seen.append((label, line))

    def of(self, label: str) -> list[str]:
        return [line for lbl, line in self.seen if lbl == label]


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def py(label: str, code: str) -> ChildSpec:
    return ChildSpec(label, [sys.executable, "-c", code])


async def test_children_output_is_labelled_and_stop_leaves_no_orphans() -> None:
    lines = Lines()
    group = ProcessGroup(lines, stop_timeout_s=5.0)
    pid_a = await group.start(py("a", SLEEPER.format(name="a")))
    pid_b = await group.start(py("b", PARENT_OF_GRANDCHILD))
    await wait_until(lambda: lines.of("a") == ["a up"] and len(lines.of("b")) == 1, deadline_s=10.0, what="both up")
    grandchild = int(lines.of("b")[0].split()[1])
    assert sorted(group.running()) == ["a", "b"]

    exits = await asyncio.wait_for(group.stop(), timeout=15)

    assert sorted(exits, key=lambda e: e.label) == [ChildExit("a", -15), ChildExit("b", -15)]
    await wait_until(lambda: gone(pid_a) and gone(pid_b) and gone(grandchild), deadline_s=5, what="all gone")
    assert group.running() == []


async def test_a_crashed_child_is_reported_with_its_exit_code() -> None:
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0) as group:
        waiting = asyncio.create_task(group.wait_first_exit())  # asked before the child even starts
        survivor = await group.start(py("ok", SLEEPER.format(name="ok")))
        await group.start(py("crash", "import sys; print('about to fail', flush=True); sys.exit(3)"))
        crashed = await asyncio.wait_for(waiting, timeout=10)
        assert crashed == ChildExit("crash", 3)
        assert lines.of("crash") == ["about to fail"]  # its last words arrive before the report
        assert group.running() == ["ok"]
    assert gone(survivor)


async def test_a_child_ignoring_sigterm_is_killed_after_the_bound() -> None:
    lines = Lines()
    group = ProcessGroup(lines, stop_timeout_s=0.5)
    pid = await group.start(py("stubborn", IGNORES_SIGTERM))
    await wait_until(lambda: lines.of("stubborn") == ["stubborn up"], deadline_s=10.0, what="stubborn up")
    exits = await asyncio.wait_for(group.stop(), timeout=10)
    assert exits == [ChildExit("stubborn", -9)]
    assert gone(pid)


async def test_exits_during_stop_are_not_reported_as_crashes() -> None:
    group = ProcessGroup(Lines(), stop_timeout_s=5.0)
    await group.start(py("a", SLEEPER.format(name="a")))
    waiting = asyncio.create_task(group.wait_first_exit())
    await group.stop()
    done, _ = await asyncio.wait({waiting}, timeout=0.2)
    assert not done
    waiting.cancel()


async def test_stop_can_end_some_children_before_the_others() -> None:
    lines = Lines()
    group = ProcessGroup(lines, stop_timeout_s=5.0)
    await group.start(py("backend", SLEEPER.format(name="backend")))
    await group.start(py("client", SLEEPER.format(name="client")))
    await wait_until(lambda: len(lines.seen) == 2, deadline_s=10.0, what="two lines")
    assert await group.stop(["client"]) == [ChildExit("client", -15)]
    assert group.running() == ["backend"]
    assert [e.label for e in await group.stop()] == ["backend", "client"]
    assert group.running() == []
