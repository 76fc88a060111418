"""A group of child processes with labelled output: start, notice exits, restart or stop, stop all without orphans.

Each child runs in its own session (its own process group), so Ctrl-C in the terminal reaches only the
launcher, which stops children in order; stopping signals the whole group, grandchildren included.
Without a RestartPolicy the first exit ends the group (``wait_first_exit``); with one, a child that exits is
reported and started again, like compose's ``restart: unless-stopped``, until it crash-loops. A child started on
trial (``start(spec, trial=True)``) is neither: until ``keep`` takes it in, its exit is only its own (``wait_exit``),
so its starter can try again (a server whose port was taken between choosing and binding it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from devstack.server_process import die_with_parent_hook

OutputSink = Callable[[str, str], None]  # (label, line)
_LINE_LIMIT = 1 << 20
_DRAIN_TIMEOUT_S = 2.0
_LAST_LINES = 8


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how to label its output; with ``log_path`` the output goes straight to that file."""

    label: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    log_path: Path | None = None  # not through this process: a benchmark's launcher must not spend CPU on it
    # what the child gets if this process dies without stopping it (livekit-server drains on SIGTERM: it would wait
    # for its participants forever, so it gets SIGKILL)
    parent_death_signal: int = signal.SIGTERM


@dataclass(frozen=True)
class ChildExit:
    """A child that has exited; a negative ``returncode`` is the signal that killed it."""

    label: str
    returncode: int
    last_lines: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class RestartPolicy:
    """Restart an exited child after a backoff doubling from ``first_backoff_s`` up to ``max_backoff_s``.

    A run shorter than ``crash_loop_window_s`` is a start-up crash; ``crash_loop_exits`` of them in a row
    end the group (a service that cannot start must not be retried for ever). A longer run resets both counts.
    """

    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    crash_loop_exits: int = 3
    crash_loop_window_s: float = 15.0

    def backoff_s(self, early_exits: int) -> float:
        """Seconds to wait before the next start, after ``early_exits`` start-up crashes in a row."""
        return min(self.max_backoff_s, self.first_backoff_s * 2.0 ** max(0, early_exits - 1))


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    started_at: float
    last_lines: deque[str] = field(default_factory=lambda: deque(maxlen=_LAST_LINES))
    exited: asyncio.Task[ChildExit] | None = None
    trial: bool = False  # its exit ends neither the group nor is it restarted, until ``keep``


class ProcessGroup:
    """Children started with ``start``; ``wait_first_exit`` reports the exit that ends the group; ``stop`` ends all."""

    def __init__(
        self,
        sink: OutputSink,
        *,
        stop_timeout_s: float = 10.0,
        restart: RestartPolicy | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Send every output line to ``sink``; give children ``stop_timeout_s`` after SIGTERM before SIGKILL.

        ``restart`` supervises the children; ``announce`` receives the supervisor's reports (default: the sink).
        """
        self._sink = sink
        self._stop_timeout_s = stop_timeout_s
        self._restart = restart
        self._announce = announce
        self._children: list[_Child] = []
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._first_exit: asyncio.Future[ChildExit] | None = None

    async def start(self, spec: ChildSpec, *, trial: bool = False) -> int:
        """Start ``spec`` now and return its pid; its stdout and stderr are read line by line. On ``trial``, until
        :meth:`keep` its exit is only reported to :meth:`wait_exit` (the group goes on, nothing restarts it)."""
        if self._stopping:
            raise RuntimeError("the process group is stopping")
        loop = asyncio.get_running_loop()
        child = _Child(spec, await _spawn(spec), loop.time(), trial=trial)
        child.exited = asyncio.create_task(self._watch(child), name=f"watch-{spec.label}")
        self._children.append(child)
        return child.process.pid

    def running(self) -> list[str]:
        """Labels of the children running now."""
        return [child.spec.label for child in self._children if child.process.returncode is None]

    def pid(self, label: str) -> int:
        """The pid of the latest process started under ``label`` (a restart changes it)."""
        return self._latest(label).process.pid

    async def wait_exit(self, label: str) -> ChildExit:
        """Wait for the latest process started under ``label`` to exit for good (restarts included)."""
        child = self._latest(label)
        assert child.exited is not None
        return await asyncio.shield(child.exited)

    def keep(self, label: str) -> bool:
        """End the trial of the latest child under ``label``: from now on it is one of the group's. False if it has
        exited already (its exit stays its own)."""
        child = self._latest(label)
        if child.exited is not None and child.exited.done():
            return False
        child.trial = False
        return True

    async def wait_first_exit(self) -> ChildExit:
        """Wait for the exit that ends the group (any exit; with a RestartPolicy a crash loop), not after ``stop``."""
        return await asyncio.shield(self._exit_future())

    async def stop(self, labels: Collection[str] | None = None) -> list[ChildExit]:
        """SIGTERM the children named (all by default), SIGKILL what is left after the bound; return their exits.

        From the first call on, exits are expected: no longer reported by ``wait_first_exit`` nor restarted.
        """
        self._stopping = True
        self._stop_event.set()
        chosen = [child for child in self._children if labels is None or child.spec.label in labels]
        for child in chosen:
            if child.process.returncode is None:
                _signal_group(child.process.pid, signal.SIGTERM)
        tasks = [child.exited for child in chosen if child.exited is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._stop_timeout_s)
            for child in chosen:
                _signal_group(child.process.pid, signal.SIGKILL)  # also sweeps orphaned grandchildren
            if late:
                await asyncio.wait(late, timeout=_DRAIN_TIMEOUT_S + 3.0)
        return [task.result() for task in tasks if task.done()]

    async def __aenter__(self) -> ProcessGroup:
        """Use as ``async with ProcessGroup(sink) as group:``; leaving the block stops every child."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop every child, whatever ended the block."""
        await self.stop()

    def _latest(self, label: str) -> _Child:
        """The child started last under ``label``."""
        return [child for child in self._children if child.spec.label == label][-1]

    def _exit_future(self) -> asyncio.Future[ChildExit]:
        if self._first_exit is None:
            self._first_exit = asyncio.get_running_loop().create_future()
        return self._first_exit

    def _report(self, label: str, message: str) -> None:
        if self._announce is not None:
            self._announce(f"{label}: {message}")
        else:
            self._sink(label, message)

    def _end_group(self, exit_: ChildExit) -> ChildExit:
        first = self._exit_future()
        if not self._stopping and not first.done():
            first.set_result(exit_)
        return exit_

    async def _watch(self, child: _Child) -> ChildExit:
        """Wait for the child's exit; under the restart policy start it again, until a crash loop or ``stop``."""
        loop = asyncio.get_running_loop()
        early_exits = 0
        while True:
            exit_ = await self._wait_exit(child)
            if child.trial:  # its starter decides (wait_exit): the group goes on
                return exit_
            if self._stopping or self._restart is None:
                return self._end_group(exit_)
            ran_s = loop.time() - child.started_at
            early_exits = early_exits + 1 if ran_s < self._restart.crash_loop_window_s else 0
            last = " / ".join(exit_.last_lines[-3:]) or "no output"
            if early_exits >= self._restart.crash_loop_exits:
                window = self._restart.crash_loop_window_s
                self._report(
                    child.spec.label,
                    f"✖ exited {early_exits} times within {window:.0f}s of its start (code {exit_.returncode}; "
                    f"last lines: {last}): giving up",
                )
                return self._end_group(exit_)
            delay = self._restart.backoff_s(early_exits)
            self._report(
                child.spec.label,
                f"✖ exited with code {exit_.returncode} after {ran_s:.1f}s (last lines: {last}); "
                f"restarting in {delay:.1f}s",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), timeout=delay)
            if self._stopping:
                return exit_
            child.process, child.started_at = await _spawn(child.spec), loop.time()
            child.last_lines.clear()  # each report shows the lines of the run that ended
            if self._stopping:  # stop() ran while this one was being started: it was not signalled
                _signal_group(child.process.pid, signal.SIGTERM)

    async def _wait_exit(self, child: _Child) -> ChildExit:
        process = child.process
        reader = asyncio.create_task(self._pump(child, process.stdout))
        returncode = await process.wait()
        # a grandchild may hold the pipe open: drain what is there, with a bound
        await asyncio.wait({reader}, timeout=_DRAIN_TIMEOUT_S)
        reader.cancel()
        return ChildExit(child.spec.label, returncode, tuple(child.last_lines))

    async def _pump(self, child: _Child, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self._sink(child.spec.label, f"[a line longer than {_LINE_LIMIT} bytes was dropped]")
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            child.last_lines.append(line)
            self._sink(child.spec.label, line)


async def _spawn(spec: ChildSpec) -> asyncio.subprocess.Process:
    """Start one process of ``spec`` in its own session; output to a pipe, or to ``spec.log_path``."""
    log = spec.log_path.open("ab") if spec.log_path is not None else None
    try:
        return await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log if log is not None else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(spec.env) if spec.env is not None else None,
            cwd=spec.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(spec.parent_death_signal),
            limit=_LINE_LIMIT,
        )
    finally:
        if log is not None:
            log.close()  # the child has its own copy of the descriptor


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
