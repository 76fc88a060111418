"""Running the real ``livekit-server --dev`` on loopback: its config (free ports, keys, webhooks), its command line,
and a started server as a child process (devstack.livekit_discovery says which server to use)."""

from __future__ import annotations

import json
import signal
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .livekit_discovery import DEV_API_KEY, DEV_API_SECRET, LiveKitChoice
from .server_process import ServerProcess, free_tcp_port, started_on_free_port

START_DEADLINE_S = 20.0
START_ATTEMPTS = 3


@dataclass(frozen=True)
class RunningLiveKit:
    """A real server that answers: its URLs and credentials."""

    url: str
    api_key: str
    api_secret: str
    log_path: Path | None = None

    @property
    def ws_url(self) -> str:
        """The WebSocket URL given to agents and frontends."""
        return "ws" + self.url.removeprefix("http")


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A free UDP port on ``host`` (the server's single WebRTC UDP port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_config(
    port: int,
    api_key: str,
    api_secret: str,
    webhook_urls: Sequence[str],
    *,
    empty_timeout: int = 300,
    auto_create: bool = False,
) -> dict[str, object]:
    """The server's config (keys as in ``config-sample.yaml``): loopback only, every port chosen free.

    ``room.auto_create`` off, as the deploy files set it: a join (a participant token outliving its session) cannot
    re-create a room the dispatcher removed; rooms are created by the dispatcher (CreateRoom) before anyone joins."""
    config: dict[str, object] = {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "rtc": {
            "tcp_port": free_tcp_port(),
            "udp_port": free_udp_port(),  # one UDP port (muxed): two stacks on one machine never share a range
            "node_ip": "127.0.0.1",
            "use_external_ip": False,
        },
        "keys": {api_key: api_secret},
        "room": {"empty_timeout": empty_timeout, "departure_timeout": 20, "auto_create": auto_create},
        "logging": {"level": "info"},
    }
    if webhook_urls:
        config["webhook"] = {"api_key": api_key, "urls": list(webhook_urls)}
    return config


def server_argv(
    binary: Path,
    config_path: Path | None,
    port: int,
    *,
    api_key: str = DEV_API_KEY,
    api_secret: str = DEV_API_SECRET,
    webhook_urls: Sequence[str] = (),
    empty_timeout: int = 300,
) -> list[str]:
    """The command line that runs the server (``--dev``) on ``port`` with its config written to ``config_path``,
    or given inline (``--config-body``) when that is None."""
    config = json.dumps(server_config(port, api_key, api_secret, webhook_urls, empty_timeout=empty_timeout))
    if config_path is None:
        given = ["--config-body", config]
    else:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(config)  # JSON is YAML: no YAML writer needed
        given = ["--config", str(config_path)]
    return [str(binary), "--dev", *given, "--bind", "127.0.0.1", "--node-ip", "127.0.0.1"]


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_livekit_server(
    binary: Path,
    log_dir: Path | None = None,
    *,
    webhook_urls: Sequence[str] = (),
    api_key: str = DEV_API_KEY,
    api_secret: str = DEV_API_SECRET,
    empty_timeout: int = 300,
) -> Iterator[RunningLiveKit]:
    """Start ``livekit-server --dev`` on free loopback ports; yield once ``GET /`` answers 200; stop it after."""
    workdir = Path(tempfile.mkdtemp(prefix="livekit-")) if log_dir is None else log_dir
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "livekit-server.log"

    def build(port: int) -> ServerProcess:
        argv = server_argv(
            binary,
            workdir / f"livekit-{port}.yaml",
            port,
            api_key=api_key,
            api_secret=api_secret,
            webhook_urls=webhook_urls,
            empty_timeout=empty_timeout,
        )
        # SIGTERM drains (waits for participants); an orphan must not wait forever
        return ServerProcess(
            "livekit-server", argv, log_path, stop_signal=signal.SIGTERM, parent_death_signal=signal.SIGKILL
        )

    with started_on_free_port(
        "livekit-server", build, _answers, attempts=START_ATTEMPTS, deadline_s=START_DEADLINE_S
    ) as (_, port):
        yield RunningLiveKit(f"http://127.0.0.1:{port}", api_key, api_secret, log_path)


@contextmanager
def running_livekit(
    choice: LiveKitChoice, log_dir: Path | None = None, *, webhook_urls: Sequence[str] = ()
) -> Iterator[RunningLiveKit]:
    """The real server of ``choice``: the given URL (``env``) or a started binary. Not for the simulator."""
    if choice.source == "env":
        yield RunningLiveKit(choice.url, choice.api_key, choice.api_secret)
        return
    if choice.binary is None:
        raise ValueError(f"no real LiveKit server to run: {choice.reason}")
    with running_livekit_server(
        choice.binary, log_dir, webhook_urls=webhook_urls, api_key=choice.api_key, api_secret=choice.api_secret
    ) as server:
        yield server
