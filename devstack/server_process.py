"""One long-lived server child (redis-server, postgres): start, wait until ready, stop without orphans."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account to run a server as (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on ``host`` (a race remains: callers retry on bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent_hook(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child receive ``sig`` when this process dies, even by SIGKILL.

    Linux only. PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only
    armed when forking from the main thread; elsewhere None is returned (no hook).
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl: nobody will stop us
            os.kill(os.getpid(), sig)

    return hook


class ServerProcess:
    """A server child in its own session (Ctrl-C in the terminal does not reach it) with a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        stop_signal: int,
        run_as: RunAs | None = None,
        parent_death_signal: int | None = None,
    ) -> None:
        """Start ``argv`` now; its stdout and stderr go to ``log_path``."""
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(parent_death_signal or stop_signal),  # armed only from the main thread
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the server process has not exited."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Callable[[], bool], *, deadline_s: float) -> None:
        """Poll ``probe`` until it answers True; raise ServerStartError if the server exits or time runs out."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if not self.alive():
                raise ServerStartError(
                    f"{self.name} exited with code {self.popen.returncode} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if probe():
                return
            time.sleep(0.05)  # poll interval, bounded by the deadline above
        raise ServerStartError(
            f"{self.name} not ready after {deadline_s:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the server to stop with its clean-shutdown signal; SIGKILL it after ``timeout_s``."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        else:
            self.popen.wait()


@contextmanager
def started_on_free_port(
    name: str,
    build: Callable[[int], ServerProcess],
    probe: Callable[[int], bool],
    *,
    attempts: int,
    deadline_s: float,
) -> Iterator[tuple[ServerProcess, int]]:
    """Start ``build(port)`` on a free port until ``probe(port)`` answers (a port can be taken between choosing
    and binding it: up to ``attempts`` tries); yield ``(server, port)`` and stop the server on exit, always."""
    error: ServerStartError | None = None
    for _ in range(attempts):
        port = free_tcp_port()
        server = build(port)
        try:
            server.wait_ready(functools.partial(probe, port), deadline_s=deadline_s)
        except ServerStartError as exc:
            server.stop()
            error = exc
            continue
        except BaseException:  # Ctrl-C while starting: still no orphan
            server.stop()
            raise
        try:
            yield server, port
        finally:
            server.stop()
        return
    raise ServerStartError(f"{name} did not start after {attempts} attempts") from error
