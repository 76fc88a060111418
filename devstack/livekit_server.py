"""Which LiveKit to use, and running the real ``livekit-server --dev`` on loopback as a child process.

Discovery order: ``LIVEKIT_URL`` (+ key/secret) from the environment; a ``livekit-server`` binary on PATH or in the
cache; building it with the machine's Go; the simulator. Each answer says why the better ones were not taken.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from . import livekit_build
from .server_process import ServerProcess, free_tcp_port, started_on_free_port

Source = Literal["env", "binary", "built", "simulator"]

DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
START_DEADLINE_S = 20.0
START_ATTEMPTS = 3


@dataclass(frozen=True)
class LiveKitChoice:
    """Which LiveKit the stack runs on: where it answers (``env``) or which binary to start, and why."""

    source: Source
    reason: str
    url: str = ""
    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    binary: Path | None = None

    @property
    def real(self) -> bool:
        """True for a real LiveKit server (not the simulator)."""
        return self.source != "simulator"


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


def discover_livekit(env: Mapping[str, str] | None = None, *, allow_build: bool = True) -> LiveKitChoice:
    """The best LiveKit available here, in the discovery order; never raises (the simulator is the last resort)."""
    env = os.environ if env is None else env
    url = env.get("LIVEKIT_URL", "")
    if url:
        key, secret = env.get("LIVEKIT_API_KEY", ""), env.get("LIVEKIT_API_SECRET", "")
        if key and secret:
            return LiveKitChoice("env", f"LIVEKIT_URL={url} from the environment", url, key, secret)
        why = "LIVEKIT_URL is set but LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not: using the LiveKit simulator"
        return LiveKitChoice("simulator", why)
    on_path = shutil.which(livekit_build.BINARY_NAME, path=env.get("PATH"))
    if on_path:
        version = binary_version(Path(on_path))
        return LiveKitChoice("binary", f"livekit-server {version} found on PATH ({on_path})", binary=Path(on_path))
    cached = livekit_build.cached_binary()
    if cached is not None:
        why = f"livekit-server {livekit_build.VERSION} from the cache ({cached})"
        return LiveKitChoice("binary", why, binary=cached)
    go = livekit_build.find_go()
    if go is None:
        return LiveKitChoice("simulator", "no Go toolchain (and no livekit-server binary): using the LiveKit simulator")
    if not allow_build:
        why = "livekit-server is not built yet (make livekit-server): using the LiveKit simulator"
        return LiveKitChoice("simulator", why)
    try:
        built = livekit_build.build(go)
    except livekit_build.BuildError as exc:
        first = str(exc).splitlines()[0]
        return LiveKitChoice("simulator", f"building livekit-server failed ({first}): using the LiveKit simulator")
    return LiveKitChoice(
        "built", f"livekit-server {livekit_build.VERSION} built with {go} in {built.seconds:.0f} s", binary=built.path
    )


def binary_version(binary: Path) -> str:
    """What ``livekit-server --version`` says (``1.13.5``), or ``"of unknown version"``."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "of unknown version"
    words = done.stdout.split()
    return words[-1] if done.returncode == 0 and words else "of unknown version"


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A free UDP port on ``host`` (the server's single WebRTC UDP port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def server_config(
    port: int, api_key: str, api_secret: str, webhook_urls: Sequence[str], *, empty_timeout: int = 300
) -> dict[str, object]:
    """The server's config (keys as in ``config-sample.yaml``): loopback only, every port chosen free."""
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
        "room": {"empty_timeout": empty_timeout, "departure_timeout": 20},
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
        return ServerProcess("livekit-server", argv, log_path, stop_signal=signal.SIGTERM)

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
