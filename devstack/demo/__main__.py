"""``python -m devstack.demo``: N frontends against the stack (started if none is running); exit 1 unless all ready."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
from rich.console import Console

from devstack.demo.report import ProgressView, print_report, write_json
from devstack.demo.rooms import Backend
from devstack.demo.runner import DemoConfig, DemoSetupError, run_demo
from devstack.demo.stack import ensure_stack
from devstack.demo.stats import DemoSummary
from devstack.rtc_exit import exit_now_if_rtc_ran

# The key the demo gives a stack it starts itself (as DEV_API_KEY); local and public, like devkey/secret.
DEMO_API_KEY = "ar_dev_demo_key_local_only"

app = typer.Typer(add_completion=False, help=__doc__)


def _default_api_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}"


async def _run(config: DemoConfig, console: Console, *, allow_start: bool, start_timeout_s: float) -> DemoSummary:
    console.print(f"[dim]looking for the stack at {config.api_url} ...")
    async with ensure_stack(
        config.api_url,
        api_key=config.api_key,
        concurrency=config.concurrency,
        start_timeout_s=start_timeout_s,
        allow_start=allow_start,
    ) as stack:
        where = f"started it (log: {stack.log_path})" if stack.started else "using the running stack"
        console.print(f"[dim]{where}; {config.sessions} frontends, {config.concurrency} at a time")
        with ProgressView(console, config.sessions) as progress:
            summary = await run_demo(config, on_result=progress)
        if stack.started:
            console.print("[dim]stopping the stack it started ...")
    return summary


@app.command()
def demo(
    sessions: int = typer.Option(200, "--sessions", "-n", min=1, help="How many frontends (sessions) in all."),
    concurrency: int = typer.Option(50, "--concurrency", "-c", min=1, help="How many frontends at once."),
    api_url: str = typer.Option(None, "--api-url", help="The API (default http://127.0.0.1:$API_PORT or :8000)."),
    api_key: str = typer.Option(None, "--api-key", envvar="DEV_API_KEY", help="API key (default: the demo's dev key)."),
    ready_timeout: float = typer.Option(30.0, "--ready-timeout", help="Seconds a session has to become ready."),
    room_backend: str = typer.Option("auto", "--rooms", help="auto | simulator | livekit (the real rtc SDK)."),
    json_path: str | None = typer.Option(None, "--json", help="Also write the summary as JSON to this file."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start the stack if none answers."),
    start_timeout: float = typer.Option(120.0, "--start-timeout", help="Seconds the started stack has to come up."),
) -> None:
    """Act as N frontends: request a session, join its room, wait for agent.ready; report latencies and failures."""
    if room_backend not in ("auto", "simulator", "livekit"):
        raise typer.BadParameter("--rooms must be auto, simulator or livekit")
    backend: Backend = room_backend  # type: ignore[assignment]  # checked just above
    config = DemoConfig(
        api_url=(api_url or _default_api_url()).rstrip("/"),
        api_key=api_key or DEMO_API_KEY,
        sessions=sessions,
        concurrency=concurrency,
        ready_timeout_s=ready_timeout,
        room_backend=backend,
    )
    console = Console(highlight=False)
    try:
        summary = asyncio.run(_run(config, console, allow_start=start, start_timeout_s=start_timeout))
    except DemoSetupError as exc:
        console.print(f"[bold red]demo could not run:[/] {exc}")
        raise typer.Exit(2) from exc
    print_report(console, summary)
    if json_path is not None:
        write_json(Path(json_path), summary)
        console.print(f"[dim]summary written to {json_path}")
    code = 0 if summary.all_ready else 1
    exit_now_if_rtc_ran(code)  # frontends on real LiveKit: the native runtime must not abort a finished demo
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
