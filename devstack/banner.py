"""The "stack is ready" banner: where everything runs and a curl session to paste."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from devstack.livekit_side import LiveKitSide
from devstack.servers import ServerHandle

DASHBOARD, ALERTS = "deploy/grafana/agentready-dashboard.json", "deploy/prometheus/alerts.yml"
_SOURCE = {"env": "from the environment", "testcontainers": "testcontainers", "embedded": "embedded"}


@dataclass(frozen=True)
class StackInfo:
    """What the banner shows."""

    api_url: str
    livekit: LiveKitSide
    redis: ServerHandle
    postgres: ServerHandle
    api_key: str = "<api key>"
    publishable_key: str = ""  # with the demo page only
    metrics: Mapping[str, str] = field(default_factory=dict)  # service label -> its metrics URL, besides the API's


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _server_line(handle: ServerHandle) -> Text:
    detail = _SOURCE[handle.source]
    if handle.source != "env":
        detail += f", up in {handle.startup_seconds:.2f}s"
    if handle.data_dir is not None:
        detail += f", data in {handle.data_dir}"
    return Text.assemble(masked(handle.url), (f"  ({detail})", "dim"))


def curl_commands(api_url: str, api_key: str = "<api key>") -> list[str]:
    """The demo: create a flow, start a session on it, follow the session's status."""
    auth = f"-H 'authorization: Bearer {api_key}'"
    return [
        f"curl -s -X POST {api_url}/api/flows {auth} -H 'content-type: application/json' "
        """-d '{"name":"demo","greeting":"Hello!"}'""",
        f"curl -s -X POST {api_url}/api/flows/<flow-id>/sessions {auth}",
        f"curl -s {api_url}/api/sessions/<session-id> {auth}",
        f"curl -sN {api_url}/api/sessions/<session-id>/events {auth}",
    ]


def render_panel(info: StackInfo) -> RenderableType:
    """A panel with the URLs and where the servers came from."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("API", Text.assemble(info.api_url, ("  (OpenAPI docs at /docs)", "dim")))
    table.add_row("API key", Text.assemble(info.api_key, ("  (organisation 'dev'; DEV_API_KEY sets it)", "dim")))
    if info.publishable_key:
        built = ("  (build it once: cd web && npm ci && npm run build)", "dim")
        table.add_row("Demo page", Text.assemble(f"{info.api_url}/demo", built))
        table.add_row(
            "Publishable key",
            Text.assemble(info.publishable_key, ("  (demo flow only, from local origins; browser-safe)", "dim")),
        )
    others = ", ".join(f"{label} :{urlsplit(url).port}" for label, url in info.metrics.items())
    where = f"  ({others}; Grafana dashboard and alerts: {DASHBOARD}, {ALERTS})"
    table.add_row("Metrics", Text.assemble(f"{info.api_url}/metrics", (where, "dim")))
    table.add_row("LiveKit", Text.assemble(info.livekit.url, (f"  ({info.livekit.reason})", "dim")))
    table.add_row("Redis", _server_line(info.redis))
    table.add_row("PostgreSQL", _server_line(info.postgres))
    return Panel(table, title="agentready dev stack is ready", border_style="green", expand=False)


def print_banner(console: Console, info: StackInfo) -> None:
    """Print the panel, then the curl commands unwrapped and outside any box, so they paste as they are."""
    console.print(render_panel(info))
    console.print(Text("Try it (put in the ids each answer returns); Ctrl-C stops everything:", style="dim"))
    for command in curl_commands(info.api_url, info.api_key):
        console.print(Text(command, style="green"), soft_wrap=True)
