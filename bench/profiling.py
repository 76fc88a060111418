"""Sampling profiles with py-spy (raw collapsed stacks), reduced to the functions that cost the most."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def require_py_spy() -> str:
    """The py-spy executable, or exit with what to do (a benchmark asked to profile)."""
    exe = py_spy()
    if exe is None:
        raise SystemExit("profiling needs py-spy: `uv sync` installs it (a dev dependency)")
    return exe


class Recording:
    """A py-spy recording of one process, running until ``stop``."""

    def __init__(self, proc: asyncio.subprocess.Process | None, output: Path) -> None:
        self._proc = proc
        self.output = output

    @classmethod
    async def start(cls, pid: int, output: Path) -> Recording:
        """Start sampling ``pid`` (50 Hz, collapsed stacks); a no-op recording when py-spy is missing."""
        exe = py_spy()
        if exe is None:
            return cls(None, output)
        argv = [exe, "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--nonblocking"]
        proc = await asyncio.create_subprocess_exec(
            *argv, "--output", str(output), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return cls(proc, output)

    async def stop(self) -> Path | None:
        """Stop sampling (SIGINT makes py-spy write its output); the output, or None if py-spy failed."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=30)
        except TimeoutError:
            self._proc.kill()
            return None
        return self.output


def _frame(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    module = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({module})" if module else name


def top_functions(collapsed: Path, limit: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Share of samples per function: ``self`` (the innermost frame) and ``total`` (anywhere on the stack)."""
    if not collapsed.exists():
        return {"self": [], "total": []}
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if samples == 0:
        return {"self": [], "total": []}
    return {
        "self": [(name, 100 * n / samples) for name, n in own.most_common(limit)],
        "total": [(name, 100 * n / samples) for name, n in total.most_common(limit * 3)],
    }
