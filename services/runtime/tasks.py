"""Stopping a background task safely on Python 3.11: cancel it, then wait for it with a bound.

``task.cancel(); with suppress(CancelledError): await task`` has two flaws. It waits without a bound for a task that
lost its cancellation (3.11's ``asyncio.wait_for``, used by redis-py for every command, can drop a cancellation that
arrives as the command completes: CPython gh-86296), and it swallows a cancellation aimed at the *caller* too.
``asyncio.wait`` only waits: the caller stays cancellable and the wait ends at ``timeout_s``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any], *, timeout_s: float, what: str) -> bool:
    """Cancel ``task`` and wait at most ``timeout_s`` for it to end; return whether it ended.

    A task still running after the bound is logged (``what`` names it) and left to its own stop condition; an
    exception it ended with is logged, not raised, since the caller is stopping it anyway.
    """
    task.cancel()
    await asyncio.wait({task}, timeout=timeout_s)
    if not task.done():
        log.warning("task_still_running_after_cancel", task=what, waited_s=timeout_s)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("task_failed_while_stopping", task=what, error=repr(task.exception()))
    return True
