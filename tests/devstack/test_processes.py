"""devstack.processes: labelled output, the first unexpected exit, supervision, and a stop that leaves no orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from devstack.processes import ChildExit, ChildSpec, ProcessGroup, RestartPolicy
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


# Supervision: short backoffs so the tests stay fast; a run under 5 s counts as a start-up crash.
FAST = RestartPolicy(first_backoff_s=0.05, max_backoff_s=0.2, crash_loop_exits=3, crash_loop_window_s=5.0)
# Exits the first time (marker file absent), then stays up: one crash, then a healthy service.
EXITS_ONCE = (
    "import os, sys, time\n"
    "marker = sys.argv[1]\n"
    "if not os.path.exists(marker):\n"
    "    open(marker, 'w').close()\n"
    "    print('first run, exiting', flush=True)\n"
    "    sys.exit(4)\n"
    "print('second run up', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.parametrize("restart", [None, FAST], ids=["unsupervised", "supervised"])
async def test_a_child_on_trial_that_exits_ends_neither_the_group_nor_is_restarted(
    restart: RestartPolicy | None,
) -> None:
    """Its starter hears of the exit (wait_exit) and may try again; keep() of an exited child says so."""
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0, restart=restart) as group:
        ending = asyncio.create_task(group.wait_first_exit())
        await group.start(py("other", SLEEPER.format(name="other")))
        await group.start(py("server", "import sys; print('address in use', flush=True); sys.exit(0)"), trial=True)
        exited = await asyncio.wait_for(group.wait_exit("server"), timeout=10)
        assert exited == ChildExit("server", 0) and exited.last_lines == ("address in use",)
        assert not group.keep("server")
        done, _ = await asyncio.wait({ending}, timeout=0.3)
        assert not done and group.running() == ["other"]
        assert lines.of("server") == ["address in use"]  # not restarted (nor reported as a crash)
        ending.cancel()


async def test_a_kept_child_is_one_of_the_group_its_exit_ends_it() -> None:
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0) as group:
        ending = asyncio.create_task(group.wait_first_exit())
        pid = await group.start(py("server", SLEEPER.format(name="server")), trial=True)
        await wait_until(lambda: lines.of("server") == ["server up"], deadline_s=10.0, what="server up")
        assert group.keep("server")
        os.killpg(pid, signal.SIGKILL)
        assert await asyncio.wait_for(ending, timeout=10) == ChildExit("server", -9)


async def test_a_supervised_child_that_exits_once_is_restarted_and_the_group_keeps_running(tmp_path: Path) -> None:
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0, restart=FAST) as group:
        ending = asyncio.create_task(group.wait_first_exit())
        await group.start(py("other", SLEEPER.format(name="other")))
        spec = ChildSpec("flaky", [sys.executable, "-c", EXITS_ONCE, str(tmp_path / "ran")])
        first_pid = await group.start(spec)
        await wait_until(lambda: "second run up" in lines.of("flaky"), deadline_s=10.0, what="restarted")
        assert lines.of("flaky")[0] == "first run, exiting"
        assert any("exited with code 4" in line and "restarting" in line for line in lines.of("flaky"))
        assert sorted(group.running()) == ["flaky", "other"] and group.pid("flaky") != first_pid
        assert not ending.done()
        ending.cancel()


async def test_a_supervised_child_that_crash_loops_ends_the_group_with_its_code() -> None:
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0, restart=FAST) as group:
        survivor = await group.start(py("ok", SLEEPER.format(name="ok")))
        await group.start(py("crash", "import sys; print('bad config', flush=True); sys.exit(3)"))
        ended = await asyncio.wait_for(group.wait_first_exit(), timeout=20)
        assert ended == ChildExit("crash", 3) and ended.last_lines == ("bad config",)
        assert lines.of("crash").count("bad config") == FAST.crash_loop_exits  # started, restarted, restarted
        assert any("giving up" in line for line in lines.of("crash"))
        assert group.running() == ["ok"]
    assert gone(survivor)


async def test_kill_9_of_a_supervised_child_is_restarted() -> None:
    lines = Lines()
    async with ProcessGroup(lines, stop_timeout_s=5.0, restart=FAST) as group:
        ending = asyncio.create_task(group.wait_first_exit())
        first = await group.start(py("svc", SLEEPER.format(name="svc")))
        await wait_until(lambda: lines.of("svc") == ["svc up"], deadline_s=10.0, what="svc up")
        os.killpg(first, signal.SIGKILL)
        await wait_until(lambda: lines.of("svc").count("svc up") == 2, deadline_s=10.0, what="svc up again")
        assert any("exited with code -9" in line for line in lines.of("svc"))
        assert group.running() == ["svc"] and group.pid("svc") != first
        assert gone(first) and not ending.done()
        ending.cancel()
    assert gone(group.pid("svc"))


def test_backoff_doubles_up_to_its_bound() -> None:
    policy = RestartPolicy(first_backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.backoff_s(n) for n in range(5)] == [0.5, 0.5, 1.0, 2.0, 3.0]


_LAUNCHER_THAT_DIES = """
import asyncio, os, signal, sys
from devstack.processes import ChildSpec, ProcessGroup

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"

async def main():
    group = ProcessGroup(lambda label, line: None)
    spec = ChildSpec("server", [sys.executable, "-c", STUBBORN], parent_death_signal=getattr(signal, sys.argv[1]))
    print(await group.start(spec), flush=True)
    await asyncio.sleep(0.5)  # let the child arm its handler
    os._exit(0)  # the launcher dies without stopping its children

asyncio.run(main())
"""


@pytest.mark.parametrize(("death_signal", "survives"), [("SIGKILL", False), ("SIGTERM", True)])
async def test_a_child_gets_its_parent_death_signal_when_the_launcher_dies(death_signal: str, survives: bool) -> None:
    # livekit-server drains on SIGTERM (waits for its participants): orphaned, it must get SIGKILL instead
    launcher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LAUNCHER_THAT_DIES, death_signal, stdout=asyncio.subprocess.PIPE, cwd=Path.cwd()
    )
    out, _ = await asyncio.wait_for(launcher.communicate(), timeout=30)
    child = int(out.decode().split()[0])
    try:
        if survives:  # a child that ignores SIGTERM outlives its launcher: the case SIGKILL is for
            with pytest.raises(AssertionError):
                await wait_until(lambda: gone(child), deadline_s=1.0, what="child gone")
        else:
            await wait_until(lambda: gone(child), deadline_s=10.0, what="orphaned child killed")
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)
