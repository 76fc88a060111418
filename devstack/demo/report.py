"""The demo's output: a live progress bar while frontends run, then tables of timings and failures."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devstack.demo.frontend import SessionResult
from devstack.demo.stats import DemoSummary, Percentiles


class ProgressView:
    """A rich progress bar counting finished frontends, with ready/failed so far; use as a context manager."""

    def __init__(self, console: Console, total: int) -> None:
        """Show progress on ``console`` towards ``total`` sessions."""
        self._progress = Progress(
            TextColumn("[bold]sessions"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ready]} ready[/] [red]{task.fields[failed]} failed[/]"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._progress.add_task("sessions", total=total, ready=0, failed=0)
        self._ready = self._failed = 0

    def __enter__(self) -> ProgressView:
        """Start drawing."""
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop drawing (the bar stays on screen)."""
        self._progress.stop()

    def __call__(self, result: SessionResult) -> None:
        """Count one finished frontend."""
        if result.ok:
            self._ready += 1
        else:
            self._failed += 1
        self._progress.update(self._task, advance=1, ready=self._ready, failed=self._failed)


def _row(name: str, p: Percentiles | None) -> list[str]:
    if p is None:
        return [name, "-", "-", "-", "-", "0"]
    return [name, f"{p.p50_ms:.0f}", f"{p.p95_ms:.0f}", f"{p.p99_ms:.0f}", f"{p.max_ms:.0f}", str(p.count)]


def _percentile_table(title: str, rows: dict[str, Percentiles | None]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for heading in ("p50 ms", "p95 ms", "p99 ms", "max ms", "n"):
        table.add_column(heading, justify="right")
    for name, p in rows.items():
        table.add_row(*_row(name, p))
    return table


def print_report(console: Console, summary: DemoSummary) -> None:
    """Print the headline, the timing tables and (if any) the failures by reason."""
    style = "bold green" if summary.all_ready else "bold red"
    rate = summary.sessions / summary.wall_s if summary.wall_s > 0 else 0.0
    console.print(
        f"[{style}]{summary.ready}/{summary.sessions} sessions ready[/] in {summary.wall_s:.1f}s "
        f"({rate:.1f} sessions/s, concurrency {summary.concurrency}, rooms: {summary.backend})"
    )
    console.print(_percentile_table("Frontend timings (from the first POST)", summary.timings))
    console.print(_percentile_table("Stage breakdown (server timestamps, ready sessions)", summary.stages))
    if summary.http_retries or summary.cleanup_errors:
        retried, cleanup = summary.http_retries, summary.cleanup_errors
        console.print(f"[yellow]{retried} POSTs retried (429/503); {cleanup} DELETEs failed")
    if summary.failures:
        table = Table(title="Failures by reason", title_justify="left")
        table.add_column("reason", style="red")
        table.add_column("count", justify="right")
        table.add_column("example")
        for reason, count in summary.failures.items():
            table.add_row(reason, str(count), summary.failure_examples.get(reason, "")[:120])
        console.print(table)


def write_json(path: Path, summary: DemoSummary) -> None:
    """Write the summary as JSON (milliseconds) to ``path``."""
    path.write_text(json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
