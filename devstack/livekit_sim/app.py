"""Wiring: the aiohttp application, and :func:`run_simulator` for tests and the entry point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from .dispatch_service import DispatchService
from .faults import FaultInjector
from .jobs import ASSIGN_JOB_TIMEOUT, JobLauncher
from .ops import OpsEndpoints
from .room_bus import RoomBus
from .room_service import RoomService
from .rooms import RoomManager
from .state import RoomDefaults, SimState
from .twirp import TwirpServer
from .webhooks import WebhookSender
from .worker_protocol import WorkerEndpoint

log = structlog.get_logger("livekit_sim")

DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"


@dataclass
class SimulatorConfig:
    """Credentials and timings; the defaults are ``livekit-server --dev``'s."""

    api_key: str = DEV_API_KEY
    api_secret: str = DEV_API_SECRET
    extra_keys: dict[str, str] = field(default_factory=dict)
    empty_timeout: int = 300
    departure_timeout: int = 20
    assign_timeout: float = ASSIGN_JOB_TIMEOUT
    reap_interval: float = 1.0
    ops_enabled: bool = True
    job_delay_ms: int = 0  # the agent's start-up time: a job is offered to a worker this long after its dispatch
    fixed_worker_load: float | None = None  # benchmarks: ignore reported load (the agent fleet runs elsewhere)
    webhook_urls: list[str] = field(default_factory=list)  # signed webhooks go to each, as livekit-server sends them
    # room.auto_create: a join (without roomCreate) or CreateDispatch may create a missing room; false refuses them
    auto_create: bool = True

    @property
    def keys(self) -> dict[str, str]:
        """API key -> secret."""
        return {**self.extra_keys, self.api_key: self.api_secret}


class Simulator:
    """One simulated server: its state and components, and the aiohttp app serving them."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        keys = self.config.keys
        self.state = SimState(RoomDefaults(self.config.empty_timeout, self.config.departure_timeout))
        self.faults = FaultInjector()
        self.launcher = JobLauncher(
            self.state, keys, self.config.assign_timeout, job_delay_s=self.config.job_delay_ms / 1000
        )
        self.rooms = RoomManager(self.state, self.launcher, self.config.reap_interval)
        self.bus = RoomBus(self.state, keys, self.rooms, auto_create=self.config.auto_create)
        self.launcher.remove_participant = self.bus.disconnect
        self.workers = WorkerEndpoint(self.state, keys, fixed_load=self.config.fixed_worker_load)
        self.webhooks = WebhookSender(self.config.webhook_urls, self.config.api_key, self.config.api_secret)
        if self.config.webhook_urls:
            self.state.observers.append(self.webhooks.observe)
        self.url = ""
        self.app = self._build_app(keys)

    @property
    def ws_url(self) -> str:
        """The URL agents and clients are given (``ws://host:port``)."""
        return "ws://" + self.url.removeprefix("http://")

    def _build_app(self, keys: dict[str, str]) -> web.Application:
        app = web.Application()
        routes = {
            "RoomService": RoomService(self.state, self.rooms, self.bus).routes(),
            "AgentDispatchService": DispatchService(
                self.state, self.rooms, self.launcher, auto_create=self.config.auto_create
            ).routes(),
        }
        twirp = TwirpServer(routes, keys, self.faults, self.state)
        app.router.add_route("*", "/twirp/{service}/{method}", twirp.handle)
        app.router.add_get("/agent", self.workers.handle)
        app.router.add_get("/sim/rtc", self.bus.handle)
        app.router.add_get("/", _health)
        if self.config.ops_enabled:
            OpsEndpoints(self.state, self.faults, self.workers).add_routes(app)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, _: web.Application) -> None:
        self.rooms.start()
        self.webhooks.start()

    async def _on_shutdown(self, _: web.Application) -> None:
        await self.rooms.aclose()
        await self.launcher.aclose()
        await self.bus.close_all()
        await self.workers.close_all()
        await self.webhooks.aclose()


async def _health(_: web.Request) -> web.Response:
    return web.Response(text="OK")


@contextlib.asynccontextmanager
async def run_simulator(
    host: str = "127.0.0.1", port: int = 0, config: SimulatorConfig | None = None
) -> AsyncIterator[Simulator]:
    """Serve a simulator on ``host:port`` (0 = any free port) for the duration of the block."""
    sim = Simulator(config)
    runner = web.AppRunner(sim.app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        sim.url = f"http://{shown}:{bound_port}"
        log.info("livekit simulator listening", url=sim.url, api_key=sim.config.api_key)
        yield sim
    finally:
        await runner.cleanup()
