"""``python -m devstack.livekit_sim``: serve the LiveKit simulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal

import structlog

from services.runtime.logging import configure_logging

from .app import DEV_API_KEY, DEV_API_SECRET, SimulatorConfig, run_simulator


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.livekit_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7880)
    parser.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY") or DEV_API_KEY)
    parser.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET") or DEV_API_SECRET)
    parser.add_argument("--empty-timeout", type=int, default=300, help="seconds an unjoined room lives")
    parser.add_argument("--departure-timeout", type=int, default=20, help="seconds a room lives once left")
    parser.add_argument("--job-delay-ms", type=int, default=0, help="simulated agent start-up time per job")
    parser.add_argument("--fixed-worker-load", type=float, default=None, help="benchmarks: ignore workers' load")
    parser.add_argument(
        "--webhook-url", action="append", default=[], help="POST signed webhooks here (repeatable), like the server"
    )
    parser.add_argument(
        "--no-auto-create",
        dest="auto_create",
        action="store_false",
        help="room.auto_create: false: a join or CreateDispatch does not create a missing room (as deployments set)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--expose-ops", action="store_true", help="serve /sim/state and /sim/faults on a non-loopback host too"
    )
    return parser.parse_args(argv)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(args: argparse.Namespace) -> None:
    config = SimulatorConfig(
        api_key=args.api_key,
        api_secret=args.api_secret,
        empty_timeout=args.empty_timeout,
        departure_timeout=args.departure_timeout,
        job_delay_ms=args.job_delay_ms,
        fixed_worker_load=args.fixed_worker_load,
        webhook_urls=args.webhook_url,
        auto_create=args.auto_create,
        ops_enabled=args.expose_ops or _is_loopback(args.host),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with run_simulator(args.host, args.port, config):
        await stop.wait()
        structlog.get_logger("livekit_sim").info("livekit simulator stopping")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, configure logging and serve."""
    args = _parse_args(argv)
    configure_logging("livekit_sim", args.log_level)
    # one access line per request drowns make dev's output (the launcher and the demo poll /sim/state every 100 ms):
    # requests are logged at DEBUG only
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if args.log_level.upper() == "DEBUG" else logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
