"""Ending the jobs a drain could not wait for: at once, each saying why, instead of after livekit-agents' own wait.

When the worker shuts down, livekit-agents asks each running job to stop and waits up to 15 s for its entrypoint
before cancelling it. A ready session whose user stays never returns by itself, so after the drain timeout the
process would linger 15 s more (past a grace period sized for the drain) and the session's end would read as a
generic shutdown. Jobs register in their process's LOCAL_JOBS; when the drain times out the worker cancels those in
its own process (the thread executor) and sends DRAIN_SIGNAL to each job process (the process executor), whose
handler cancels its job the same way. Each job then reports ``agent.job_ended`` with the reason and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from livekit.agents import AgentServer

log = structlog.get_logger(__name__)

DRAIN_SIGNAL = signal.SIGUSR2  # SIGUSR1 is livekit-agents' own (stack traces, killing a process)


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[object]
    reason: str | None = None


class LocalJobs:
    """The job entrypoints running in this process (each in its own event loop and thread), by job id."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}  # single dict operations: safe across job threads under the GIL

    def add(self, job_id: str) -> None:
        """Register the current task (a job's entrypoint) under ``job_id``."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs[job_id] = _Job(asyncio.get_running_loop(), task)
            task.add_done_callback(lambda _: self.discard(job_id))  # also if it ends before reaching its own discard

    def discard(self, job_id: str) -> None:
        """Forget ``job_id`` (its entrypoint is ending)."""
        self._jobs.pop(job_id, None)

    def end_reason(self, job_id: str) -> str | None:
        """Why the worker ended ``job_id`` (None: it did not)."""
        job = self._jobs.get(job_id)
        return job.reason if job is not None else None

    def end_all(self, reason: str) -> int:
        """Cancel every registered entrypoint, recording ``reason``; return how many."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.reason = reason
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: the job is over anyway
                job.loop.call_soon_threadsafe(job.task.cancel)
        return len(jobs)


# One per process by nature (jobs register from their own threads; the worker's serve() ends them): a job's
# entrypoint reaches it through this module, since its arguments are pickled into job processes.
LOCAL_JOBS = LocalJobs()


def drain_timeout_reason(timeout_s: float) -> str:
    """The sentence a session cut short by a drain timeout ends with."""
    return f"the agent service shut down: its drain timeout ({timeout_s:g} s) passed before the session ended"


def end_jobs_on_drain_signal(reason: str) -> None:
    """In a job process (main thread): DRAIN_SIGNAL ends its running job with ``reason``."""
    signal.signal(DRAIN_SIGNAL, lambda _sig, _frame: LOCAL_JOBS.end_all(reason))


def signal_job_processes(server: AgentServer) -> int:
    """Send DRAIN_SIGNAL to every job process that runs a job (their set-up installed the handler); return how many.

    livekit-agents has no public list of its job processes: ``_proc_pool`` (1.8.x) is read defensively, and a
    version without it only loses the early end (its jobs still end after livekit-agents' own wait).
    """
    pool = getattr(server, "_proc_pool", None)
    signalled = 0
    for executor in getattr(pool, "processes", ()):
        pid = getattr(executor, "pid", None)  # thread executors have none: LOCAL_JOBS reaches their jobs
        if executor.running_job is None or not isinstance(pid, int):
            continue
        try:
            os.kill(pid, DRAIN_SIGNAL)
            signalled += 1
        except ProcessLookupError:
            continue  # it exited meanwhile: its job is over
        except PermissionError as exc:
            log.warning("drain_signal_failed", pid=pid, error=str(exc))
    return signalled
