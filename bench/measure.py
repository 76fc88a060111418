"""Per-service memory (peak RSS) and CPU seconds, each service counted with its child processes."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class Usage:
    """One sample of one service: resident memory and CPU seconds (user + system) so far."""

    rss_bytes: int
    cpu_s: float


def usage_of(pid: int) -> Usage:
    """The process and its descendants, summed; a vanished process counts as nothing."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return Usage(0, 0.0)
    rss, cpu = 0, 0.0
    for proc in procs:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            continue
    return Usage(rss, cpu)


@dataclass
class ResourceMonitor:
    """Samples every service every ``interval_s`` in a thread; keeps the peak RSS since the last ``reset_peaks``."""

    pids: dict[str, int]
    interval_s: float = 0.25
    peaks: dict[str, int] = field(default_factory=dict)
    overall_peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling."""
        self._thread = threading.Thread(target=self._run, name="bench-resource-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (bounded wait)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Take one sample of every service."""
        for name, pid in self.pids.items():
            rss = usage_of(pid).rss_bytes
            with self._lock:
                self.peaks[name] = max(self.peaks.get(name, 0), rss)
                self.overall_peaks[name] = max(self.overall_peaks.get(name, 0), rss)

    def reset_peaks(self) -> dict[str, float]:
        """The peaks (MB) since the last reset; start a new window."""
        self.sample()
        with self._lock:
            peaks = {name: value / MB for name, value in self.peaks.items()}
            self.peaks.clear()
        return peaks

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far, per service."""
        return {name: usage_of(pid).cpu_s for name, pid in self.pids.items()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds spent between two ``cpu()`` readings, per service."""
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in before}


async def cpu_rates(monitor: ResourceMonitor, window_s: float) -> dict[str, float]:
    """Each service's CPU use over the next ``window_s`` seconds, in ms per second."""
    before = monitor.cpu()
    await asyncio.sleep(window_s)
    return {name: 1000 * s / window_s for name, s in cpu_delta(before, monitor.cpu()).items()}


async def wait_quiet(
    monitor: ResourceMonitor,
    names: Iterable[str],
    idle_ms_per_s: Mapping[str, float] | None = None,
    deadline_s: float = 30.0,
    margin_ms_per_s: float = 50.0,
    window_s: float = 0.5,
) -> float | None:
    """Wait until ``names`` together use at most their idle CPU (+ 5% of a core) over one window: the work a
    phase left behind (an ending, a webhook, a queued request) is done. Seconds it took; None past the deadline."""
    names = list(names)
    idle = sum((idle_ms_per_s or {}).get(name, 0.0) for name in names)
    started = time.monotonic()
    while True:
        rates = await cpu_rates(monitor, window_s)
        waited = time.monotonic() - started
        if sum(rates.get(name, 0.0) for name in names) <= idle + margin_ms_per_s:
            return waited
        if waited > deadline_s:
            return None


def machine() -> dict[str, object]:
    """What the benchmark ran on: cores, memory, CPU model, load average now."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        model = "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
