"""``python -m devstack.dashboard``: start a stack, run the demo against it while scraping every process' /metrics,
and draw the Grafana dashboard's panels from those scrapes into a PNG (``--from`` draws saved scrapes again)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import typer
from rich.console import Console

from devstack.dashboard.promql import Scrapes
from devstack.dashboard.render import render
from devstack.dashboard.scrape import load, save, scrape_until
from devstack.demo.runner import DemoConfig, run_demo
from devstack.demo.stats import DemoSummary
from devstack.profiles import demo
from devstack.rtc_exit import exit_now_if_rtc_ran
from devstack.server_process import free_tcp_port
from devstack.stack import found_servers, start_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
app = typer.Typer(add_completion=False, help=__doc__)


async def _run(sessions: int, concurrency: int, every_s: float, tail_s: float) -> tuple[Scrapes, DemoSummary, str]:
    log_path = REPO_ROOT / ".devdata" / "dashboard-stack.log"
    log_path.parent.mkdir(exist_ok=True)
    # free ports for everything: a `make dev` on this machine keeps its own
    profile = dataclasses.replace(demo(concurrency), sim_port=None)
    with found_servers() as (redis, postgres):
        stack = await start_stack(
            profile, redis_url=redis.url, database_url=postgres.url, api_port=free_tcp_port(), log_path=log_path
        )
        async with stack:
            targets = {"api": f"{stack.api_url}/metrics", **stack.metrics}
            stop = asyncio.Event()
            scraping = asyncio.create_task(scrape_until(targets, every_s, stop))
            config = DemoConfig(stack.api_url, stack.api_key, sessions=sessions, concurrency=concurrency)
            summary = await run_demo(config)
            await asyncio.sleep(tail_s)  # the sessions' ends, and the rates going back down
            stop.set()
            return await scraping, summary, stack.livekit.reason


@app.command()
def main(
    sessions: int = typer.Option(40, "--sessions", "-n", min=1),
    concurrency: int = typer.Option(10, "--concurrency", "-c", min=1),
    out: str = typer.Option("docs/dashboard.png", "--out", help="The PNG to write."),
    every_s: float = typer.Option(1.0, "--scrape-every", help="Seconds between scrapes."),
    window_s: float = typer.Option(15.0, "--window", help="The rate window ($__rate_interval), seconds."),
    tail_s: float = typer.Option(10.0, "--tail", help="Seconds to keep scraping after the demo."),
    save_path: str = typer.Option("", "--save", help="Also write the scrapes as JSON to this file."),
    from_path: str = typer.Option("", "--from", help="Draw saved scrapes (a --save file) instead of running the demo."),
    caption: str = typer.Option("", "--caption", help="What the title says about the run (default: the demo's)."),
) -> None:
    """Scrape a demo run (or load one) and draw the dashboard."""
    console = Console(highlight=False)
    if from_path:
        scrapes = load(Path(from_path))
    else:
        console.print(f"[dim]starting a stack, then {sessions} frontends ({concurrency} at once), scraping ...")
        scrapes, summary, livekit = asyncio.run(_run(sessions, concurrency, every_s, tail_s))
        console.print(f"{summary.ready}/{summary.sessions} ready in {summary.wall_s:.1f} s; LiveKit: {livekit}")
        measured = summary.timings.get("time to agent.ready (data channel)")
        seen = f"; the demo's own p50/p95 {measured.p50_ms / 1e3:.1f}/{measured.p95_ms / 1e3:.1f} s" if measured else ""
        caption = caption or f"make demo -n {sessions} -c {concurrency}, {summary.ready}/{summary.sessions} ready{seen}"
        console.print(caption)
        if save_path:
            save(scrapes, Path(save_path))
    render(scrapes, Path(out), window_s=window_s, caption=caption or "saved scrapes")
    console.print(f"{len(scrapes.times)} scrapes drawn into {out}")
    exit_now_if_rtc_ran(0)


if __name__ == "__main__":
    app()
