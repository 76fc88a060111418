"""devstack.stack_livekit.wait_for_output: a line from the stack's output, or from the child's own log file."""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from devstack.readiness import NotReadyError
from devstack.stack_handle import StackHandle
from devstack.stack_livekit import wait_for_output


def _stack(kept: list[str], log_dir: Path | None) -> StackHandle:
    return cast(StackHandle, SimpleNamespace(out=SimpleNamespace(kept=deque(kept)), log_dir=log_dir))


async def test_a_line_in_the_stack_output_is_found() -> None:
    needle = f"worker_registered {uuid.uuid4()}"
    await wait_for_output(_stack([f"agent | {needle}"], None), "agent", needle, deadline_s=1)


async def test_with_a_log_file_per_process_the_childs_file_is_read(tmp_path: Path) -> None:
    """The benchmark's children write to their own files, not to the stack's output."""
    needle = f"worker_registered {uuid.uuid4()}"
    (tmp_path / "agent.log").write_text(f'{{"event": "{needle}"}}\n', encoding="utf-8")
    await wait_for_output(_stack([], tmp_path), "agent", needle, deadline_s=1)


async def test_no_such_line_raises_after_the_deadline(tmp_path: Path) -> None:
    (tmp_path / "api.log").write_text("worker_registered\n", encoding="utf-8")  # another process's file
    stack = _stack(["api | worker_registered"], tmp_path)
    with pytest.raises(NotReadyError, match="worker_registered"):
        await wait_for_output(stack, "agent", "worker_registered", deadline_s=0.3)
