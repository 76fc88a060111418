"""``python -m bench.serve ceiling|polling --port N``: a comparison handler, served as ``python -m services.api`` is.

Same server, same settings: uvicorn, one worker, its default loop and HTTP implementation (uvloop and
httptools when installed), no access log. Configuration comes from the same environment as the API's.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from bench.ceiling import create_ceiling_app
from bench.polling import create_polling_app
from services.runtime.logging import configure_logging


def build_app(kind: str) -> FastAPI:
    """The app named ``kind``."""
    if kind == "ceiling":
        return create_ceiling_app()
    if kind == "polling":
        return create_polling_app()
    raise ValueError(f"unknown handler {kind!r}: expected 'ceiling' or 'polling'")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("kind", choices=["ceiling", "polling"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging(f"bench-{args.kind}", "WARNING", True)
    uvicorn.run(
        build_app(args.kind),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
