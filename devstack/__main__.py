"""``python -m devstack``: the local development stack (see devstack.dev)."""

from __future__ import annotations

import typer

from devstack.dev import DevOptions, run_dev

app = typer.Typer(add_completion=False, help="agentready local development stack.")


@app.command()
def dev(
    clean: bool = typer.Option(False, "--clean", help="Wipe .devdata/ (Redis and PostgreSQL data) first."),
    api_port: int = typer.Option(8000, "--api-port", envvar="API_PORT", help="Port of the API service."),
    ready_timeout: float = typer.Option(60.0, "--ready-timeout", help="Seconds to wait for GET /healthz."),
) -> None:
    """Start Redis, PostgreSQL, the LiveKit simulator and the four services; Ctrl-C stops them all."""
    raise typer.Exit(run_dev(DevOptions(clean=clean, api_port=api_port, ready_timeout_s=ready_timeout)))


if __name__ == "__main__":
    app()
