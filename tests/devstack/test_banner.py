"""The ``make dev`` banner says where every process serves its metrics and where the dashboard and alerts are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from devstack.banner import ALERTS, DASHBOARD, StackInfo, render_panel
from devstack.livekit_side import simulator
from devstack.servers import ServerHandle

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_banner_names_every_metrics_endpoint_and_the_dashboard() -> None:
    info = StackInfo(
        "http://127.0.0.1:8000",
        simulator(7880),
        ServerHandle("redis://127.0.0.1:6379/0", "env"),
        ServerHandle("postgresql://postgres@127.0.0.1:5432/postgres", "env"),
        metrics={"session-store": "http://127.0.0.1:41001/metrics", "agent": "http://127.0.0.1:41003/metrics"},
    )
    console = Console(width=400, record=True)
    console.print(render_panel(info))
    text = console.export_text()
    assert "http://127.0.0.1:8000/metrics" in text
    assert "session-store :41001" in text and "agent :41003" in text
    assert DASHBOARD in text and ALERTS in text
    assert (REPO_ROOT / DASHBOARD).is_file() and (REPO_ROOT / ALERTS).is_file()
