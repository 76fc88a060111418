"""A group of child processes with labelled output: start, notice the first exit, stop all without orphans.

Each child runs in its own session (its own process group), so Ctrl-C in the terminal reaches only the
launcher, which stops children in order; stopping signals the whole group, grandchildren included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devstack.server_process import die_with_parent_hook

OutputSink = Callable[[str, str], None]  # (label, line)
_LINE_LIMIT = 1 << 20
_DRAIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ChildSpec:
    """What to run and how to label its output."""

    label: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


@dataclass(frozen=True)
class ChildExit:
    """A child that has exited; a negative ``returncode`` is the signal that killed it."""

    label: str
    returncode: int


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    exited: asyncio.Task[ChildExit]


class ProcessGroup:
    """Children started with ``start``; ``wait_first_exit`` reports an unexpected exit; ``stop`` ends all."""

    def __init__(self, sink: OutputSink, *, stop_timeout_s: float = 10.0) -> None:
        """Send every output line to ``sink``; give children ``stop_timeout_s`` after SIGTERM before SIGKILL."""
        self._sink = sink
        self._stop_timeout_s = stop_timeout_s
        self._children: list[_Child] = []
        self._stopping = False
        self._first_exit: asyncio.Future[ChildExit] | None = None

    async def start(self, spec: ChildSpec) -> int:
        """Start ``spec`` now and return its pid; its stdout and stderr are read line by line."""
        if self._stopping:
            raise RuntimeError("the process group is stopping")
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(spec.env) if spec.env is not None else None,
            cwd=spec.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(signal.SIGTERM),
            limit=_LINE_LIMIT,
        )
        exited = asyncio.create_task(self._watch(spec.label, process), name=f"watch-{spec.label}")
        self._children.append(_Child(spec, process, exited))
        return process.pid

    def running(self) -> list[str]:
        """Labels of the children still running."""
        return [child.spec.label for child in self._children if child.process.returncode is None]

    async def wait_first_exit(self) -> ChildExit:
        """Wait until any child (started before or after this call) exits before ``stop`` was called."""
        return await asyncio.shield(self._exit_future())

    async def stop(self, labels: Collection[str] | None = None) -> list[ChildExit]:
        """SIGTERM the children named (all by default), SIGKILL what is left after the bound; return their exits.

        From the first call on, exits are expected and no longer reported by ``wait_first_exit``.
        """
        self._stopping = True
        chosen = [child for child in self._children if labels is None or child.spec.label in labels]
        for child in chosen:
            if child.process.returncode is None:
                _signal_group(child.process.pid, signal.SIGTERM)
        if chosen:
            _, late = await asyncio.wait([child.exited for child in chosen], timeout=self._stop_timeout_s)
            for child in chosen:
                _signal_group(child.process.pid, signal.SIGKILL)  # also sweeps orphaned grandchildren
            if late:
                await asyncio.wait(late, timeout=_DRAIN_TIMEOUT_S + 3.0)
        return [child.exited.result() for child in chosen if child.exited.done()]

    async def __aenter__(self) -> ProcessGroup:
        """Use as ``async with ProcessGroup(sink) as group:``; leaving the block stops every child."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop every child, whatever ended the block."""
        await self.stop()

    def _exit_future(self) -> asyncio.Future[ChildExit]:
        if self._first_exit is None:
            self._first_exit = asyncio.get_running_loop().create_future()
        return self._first_exit

    async def _watch(self, label: str, process: asyncio.subprocess.Process) -> ChildExit:
        reader = asyncio.create_task(self._pump(label, process.stdout))
        returncode = await process.wait()
        # a grandchild may hold the pipe open: drain what is there, with a bound
        await asyncio.wait({reader}, timeout=_DRAIN_TIMEOUT_S)
        reader.cancel()
        exit_ = ChildExit(label, returncode)
        first = self._exit_future()
        if not self._stopping and not first.done():
            first.set_result(exit_)
        return exit_

    async def _pump(self, label: str, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                self._sink(label, f"[a line longer than {_LINE_LIMIT} bytes was dropped]")
                continue
            if not raw:
                return
            self._sink(label, raw.decode(errors="replace").rstrip("\r\n"))


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
