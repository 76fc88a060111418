"""A running stack (devstack.stack starts it): URLs, environment, processes, API key, output; stop in order."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.livekit_side import LiveKitSide
from devstack.output import StackOutput
from devstack.processes import ChildExit, ChildSpec, ProcessGroup
from devstack.profiles import Profile
from devstack.server_process import free_tcp_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("session_store", "dispatcher", "webhooks", "agent", "api")
CONSUMERS = ("session_store", "dispatcher", "webhooks")  # stream consumers: a profile's ``replicas`` of each, one group


def service_labels(services: Sequence[str], replicas: int) -> list[tuple[str, str]]:
    """``(service, label)`` of every service process: ``replicas`` of each consumer, numbered when more than one."""
    labels = []
    for service in services:
        count = max(1, replicas) if service in CONSUMERS else 1
        name = service.replace("_", "-")
        labels += [(service, name if count == 1 else f"{name}-{i}") for i in range(1, count + 1)]
    return labels


@dataclass
class StackHandle:
    """A running stack: where it answers, its environment and processes, its API key and its output."""

    profile: Profile
    api_url: str
    livekit: LiveKitSide
    env: dict[str, str]
    group: ProcessGroup
    services: Sequence[str]
    out: StackOutput
    log_dir: Path | None = None
    api_key: str = ""
    publishable_key: str = ""  # the demo page's (profiles with ``demo_page``)
    pids: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # label -> its metrics URL (the API's: api_url/metrics)
    _stopped: list[ChildExit] | None = None

    @property
    def livekit_url(self) -> str:
        """LiveKit's (or the simulator's) URL."""
        return self.livekit.url

    @property
    def output(self) -> Sequence[str]:
        """The last lines the processes (and the supervisor) printed, oldest first."""
        return self.out.kept

    @property
    def headers(self) -> dict[str, str]:
        """The API's Authorization header."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, timeout: float = 10) -> httpx.AsyncClient:
        """An HTTP client of the API that sends the stack's API key."""
        return httpx.AsyncClient(base_url=self.api_url, headers=self.headers, timeout=timeout)

    def tail(self, lines: int = 60) -> str:
        """The last lines the processes (and the supervisor) printed."""
        return "\n".join(list(self.out.kept)[-lines:])

    async def start_child(
        self,
        label: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        parent_death_signal: int = signal.SIGTERM,
        trial: bool = False,
    ) -> int:
        """Start one more process under ``label`` (the stack's environment unless ``env``); return its pid. On
        ``trial`` its exit does not end the stack until ``group.keep(label)`` (:meth:`ProcessGroup.start`)."""
        log_path = self.log_dir / f"{label}.log" if self.log_dir is not None else None
        env = self.env if env is None else env
        spec = ChildSpec(
            label, argv, env=env, cwd=REPO_ROOT, log_path=log_path, parent_death_signal=parent_death_signal
        )
        self.pids[label] = await self.group.start(spec, trial=trial)
        return self.pids[label]

    async def start_service(self, service: str, label: str) -> int:
        """Start one process of ``service`` under ``label`` (also its stream consumer name)."""
        env = {**self.env, "CONSUMER_NAME": label}
        if service != "api":  # the API serves /metrics on its own port
            port = free_tcp_port()
            env |= {"METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"}
            self.metrics[label] = f"http://127.0.0.1:{port}/metrics"
        return await self.start_child(label, [sys.executable, "-m", f"services.{service}"], env)

    async def __aenter__(self) -> StackHandle:
        """``async with await start_stack(...) as stack:`` stops every process after the block."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop every process, whatever ended the block."""
        await self.stop()

    def kill(self, label: str) -> None:
        """SIGKILL one process (and its process group): no shutdown code runs."""
        os.killpg(self.group.pid(label), signal.SIGKILL)

    async def stop(self) -> list[ChildExit]:
        """Stop the services first (they never see LiveKit go), then the rest; return every exit (once)."""
        if self._stopped is None:
            await self.group.stop([label for _, label in service_labels(self.services, self.profile.replicas)])
            self._stopped = await self.group.stop()
            self.out.close()
        return self._stopped
