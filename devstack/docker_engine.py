"""Is a Docker engine answering? A check that fails fast when there is none (a CLI alone is not enough)."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_SOCKET = Path("/var/run/docker.sock")


def docker_engine_available(timeout_s: float = 1.0) -> bool:
    """True if the engine at DOCKER_HOST (or the default socket) answers a ping within ``timeout_s``."""
    if not os.environ.get("DOCKER_HOST") and not _DEFAULT_SOCKET.exists():
        return False  # nothing to ask: skip importing docker and building a client
    import docker  # lazily: a dev-only dependency, and slow to import
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=max(1, round(timeout_s)))
    except DockerException:
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError):  # requests' ConnectionError is an OSError
        return False
    finally:
        client.close()
