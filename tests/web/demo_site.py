"""The built demo page (web/dist) on a port of its own, so the browser's page and the API are different origins.

Serves ``/demo/...`` from web/dist and ``/demo/config.json`` from the test's values, as the API does in dev mode.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/demo/"


class DemoServer(ThreadingHTTPServer):
    """The HTTP server; ``config`` is what ``/demo/config.json`` answers (set once the origin is known)."""

    config: dict[str, str] = {}

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: the page's origin, which a publishable key must list."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _DemoHandler(SimpleHTTPRequestHandler):
    server: DemoServer

    def do_GET(self) -> None:
        """``/demo/config.json`` from memory; the rest of ``/demo/`` from the directory; 404 elsewhere."""
        path = self.path.split("?", 1)[0]
        if path == PREFIX + "config.json":
            body = json.dumps(self.server.config).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not path.startswith(PREFIX):
            self.send_error(404, "only /demo/ is served here")
            return
        self.path = "/" + self.path[len(PREFIX) :]
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test prints what the page showed instead."""


@contextmanager
def demo_site(dist: Path) -> Iterator[DemoServer]:
    """Serve ``dist`` at ``/demo/`` on a free loopback port until the block ends."""
    server = DemoServer(("127.0.0.1", 0), partial(_DemoHandler, directory=str(dist)))
    thread = threading.Thread(target=server.serve_forever, name="demo-site", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
