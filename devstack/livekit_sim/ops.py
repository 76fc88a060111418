"""Test and ops endpoints (no auth; the simulator binds to loopback by default).

``GET /sim/state`` counts, ``GET|POST|DELETE /sim/faults`` fault injection,
``POST /sim/workers/disconnect`` drops every worker connection (a crashed agent worker).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .faults import Fault, FaultInjector
from .state import SimState
from .worker_protocol import WorkerEndpoint


class OpsEndpoints:
    """Handlers for the ``/sim/*`` inspection and fault-injection routes."""

    def __init__(self, state: SimState, faults: FaultInjector, workers: WorkerEndpoint) -> None:
        self._state = state
        self._faults = faults
        self._workers = workers

    def add_routes(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/sim/state", self.get_state)
        app.router.add_get("/sim/faults", self.get_faults)
        app.router.add_post("/sim/faults", self.post_fault)
        app.router.add_delete("/sim/faults", self.clear_faults)
        app.router.add_post("/sim/workers/disconnect", self.disconnect_workers)

    async def get_state(self, _: web.Request) -> web.Response:
        """Rooms, participants, dispatches, workers and job counters."""
        body: dict[str, Any] = self._state.snapshot()
        body["faults"] = self._faults.describe()
        return web.json_response(body)

    async def get_faults(self, _: web.Request) -> web.Response:
        """The active faults."""
        return web.json_response(self._faults.describe())

    async def post_fault(self, request: web.Request) -> web.Response:
        """Add or replace one route's fault."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            fault = Fault.from_json(body)
        except (ValueError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._faults.set(fault)
        return web.json_response(vars(fault))

    async def clear_faults(self, _: web.Request) -> web.Response:
        """Remove every fault."""
        self._faults.clear()
        return web.json_response({"cleared": True})

    async def disconnect_workers(self, _: web.Request) -> web.Response:
        """Close every worker socket; their running jobs are forgotten, as on a real worker crash."""
        count = len(self._state.workers)
        await self._workers.close_all()
        return web.json_response({"disconnected": count})
