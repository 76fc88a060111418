"""Container health check: ``python -m deploy.docker.healthcheck [service] [--liveness]``; exit 0 when healthy.

- api: ``GET /readyz`` on API_PORT answers 200 (Redis reachable; PostgreSQL unreachable is only "degraded").
- agent: the livekit-agents worker's health endpoint ``GET /`` on AGENT_HTTP_PORT answers 200
  (503 once the worker lost its LiveKit connection).
- dispatcher, session_store, webhooks: these FastStream consumers serve no HTTP. The check is that the service's
  process runs and (unless ``--liveness``) that Redis answers and the service's consumer groups exist
  (the service creates them at start-up). It does not prove the consumer loop reads: that needs a
  heartbeat from the service itself (Redis 7.0 registers a group consumer only once it is delivered to,
  so an idle-time check on XINFO CONSUMERS is not reliable on a quiet stream).

The service is the argument, else $SERVICE, else what the entrypoint recorded in /tmp/agentready-service.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from contracts.streams import SUBSCRIPTIONS

SERVICE_FILE = Path("/tmp/agentready-service")  # noqa: S108 - written by the entrypoint, read-only here
TIMEOUT_S = 3.0


def http_ok(url: str) -> tuple[bool, str]:
    """True when ``url`` answers 200 within the timeout."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - a local http URL
            return response.status == 200, f"{url} -> {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} -> {exc.code}"
    except OSError as exc:
        return False, f"{url} unreachable: {exc}"


def process_running(service: str, proc: Path = Path("/proc")) -> bool:
    """True when a ``python -m services.<service>`` process runs in this container (its PID namespace)."""
    wanted = f"services.{service}".encode()
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            if wanted in cmdline.read_bytes().split(b"\0"):
                return True
        except OSError:
            continue  # the process ended while we looked
    return False


def groups_ready(redis_url: str, group: str) -> tuple[bool, str]:
    """True when Redis answers and ``group`` exists on every stream it reads (the service creates them at start)."""
    client = Redis.from_url(
        redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, decode_responses=True
    )
    try:
        for stream in SUBSCRIPTIONS[group]:
            try:
                names = {g["name"] for g in client.xinfo_groups(stream)}
            except ResponseError:
                names = set()  # no such stream yet
            if group not in names:
                return False, f"group {group!r} missing on {stream}"
    except (RedisError, OSError) as exc:
        return False, f"redis unreachable: {exc}"
    finally:
        client.close()
    return True, f"group {group!r} present on its {len(SUBSCRIPTIONS[group])} streams"


def check(service: str, *, liveness: bool = False) -> tuple[bool, str]:
    """Run the check of ``service`` with its own settings (the container's environment)."""
    if service == "api":
        from services.api.settings import ApiSettings

        return http_ok(f"http://127.0.0.1:{ApiSettings().api_port}/readyz")
    if service == "agent":
        from services.agent.settings import AgentSettings

        agent = AgentSettings()
        host = "127.0.0.1" if agent.agent_http_host in ("", "0.0.0.0") else agent.agent_http_host
        return http_ok(f"http://{host}:{agent.agent_http_port}/")
    if service in ("dispatcher", "session_store", "webhooks"):
        from services.runtime.settings import RuntimeSettings

        if not process_running(service):
            return False, f"no services.{service} process"
        if liveness:  # a Redis outage is the service's to ride out (it exits non-zero past its deadline)
            return True, f"services.{service} is running"
        return groups_ready(RuntimeSettings().redis_url, service)
    return False, f"unknown service {service!r}"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the check, print one line, return the exit code (0 healthy, 1 not)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", nargs="?", default=None)
    parser.add_argument("--liveness", action="store_true", help="consumers: only check that the process runs")
    args = parser.parse_args(argv)
    service = args.service or os.environ.get("SERVICE") or ""
    if not service and SERVICE_FILE.exists():
        service = SERVICE_FILE.read_text().strip()
    healthy, detail = check(service, liveness=args.liveness)
    print(f"{service or '?'}: {'healthy' if healthy else 'unhealthy'}: {detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
