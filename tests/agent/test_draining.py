"""Ending the jobs a drain could not wait for: in this process's job threads, and in a job process by its signal."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import Iterator

import pytest

from services.agent.draining import DRAIN_SIGNAL, LOCAL_JOBS, LocalJobs, end_jobs_on_drain_signal


def _job_in_a_thread(
    jobs: LocalJobs, job_id: str, outcome: dict[str, str | None], registered: threading.Event
) -> threading.Thread:
    """A job entrypoint in its own thread and event loop (the thread executor): it waits until cancelled."""

    async def entrypoint() -> None:
        jobs.add(job_id)
        registered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            outcome["reason"] = jobs.end_reason(job_id)
        finally:
            jobs.discard(job_id)

    thread = threading.Thread(target=lambda: asyncio.run(entrypoint()), daemon=True)
    thread.start()
    return thread


async def test_end_all_cancels_jobs_in_other_threads_with_the_reason() -> None:
    jobs, outcome, registered = LocalJobs(), dict[str, str | None](), threading.Event()
    job_id = f"AJ_{uuid.uuid4().hex[:8]}"
    thread = _job_in_a_thread(jobs, job_id, outcome, registered)
    assert await asyncio.to_thread(registered.wait, 5)
    assert jobs.end_all("drain timeout passed") == 1
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive() and outcome == {"reason": "drain timeout passed"}
    assert jobs.end_all("again") == 0  # the job left the registry when it ended


@pytest.fixture
def restore_drain_signal() -> Iterator[None]:
    previous = signal.getsignal(DRAIN_SIGNAL)
    yield
    signal.signal(DRAIN_SIGNAL, previous)


@pytest.mark.usefixtures("restore_drain_signal")
async def test_the_drain_signal_ends_the_job_of_a_job_process() -> None:
    end_jobs_on_drain_signal("the agent service shut down")  # as prepare_process does in a job process
    job_id = f"AJ_{uuid.uuid4().hex[:8]}"
    reason: str | None = None

    registered = asyncio.Event()

    async def entrypoint() -> None:
        nonlocal reason
        LOCAL_JOBS.add(job_id)
        registered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            reason = LOCAL_JOBS.end_reason(job_id)
            raise
        finally:
            LOCAL_JOBS.discard(job_id)

    job = asyncio.create_task(entrypoint())
    await asyncio.wait_for(registered.wait(), timeout=5)
    os.kill(os.getpid(), DRAIN_SIGNAL)  # what the worker sends each job process when its drain timed out
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(job, timeout=5)
    assert reason == "the agent service shut down"
