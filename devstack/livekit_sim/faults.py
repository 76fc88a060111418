"""Fault injection for Twirp methods: added latency and a bounded number of error answers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .errors import TWIRP_STATUS, TwirpError

ANY_ROUTE = "*"


@dataclass
class Fault:
    """One route's fault.

    ``latency_ms`` delays every call until cleared. ``count`` calls (every call when None) answer
    ``code``/``status``; with ``apply`` the call takes effect first and only its answer is lost.
    """

    route: str
    latency_ms: int = 0
    status: int | None = None
    code: str | None = None
    msg: str = "injected fault"
    count: int | None = None
    apply: bool = False

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Fault:
        """Parse a ``POST /sim/faults`` body; ValueError on nonsense."""
        route = body.get("route")
        if not isinstance(route, str) or not route:
            raise ValueError("route (a Twirp method name such as CreateDispatch, or '*') is required")
        status = body.get("status")
        code = body.get("code")
        if status is not None and code is None:
            code = next((c for c, s in TWIRP_STATUS.items() if s == status), "unknown")
        if code is not None and status is None:
            status = TWIRP_STATUS.get(code, 500)
        count = body.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a non-negative integer")
        return cls(
            route=route,
            latency_ms=int(body.get("latency_ms", 0)),
            status=int(status) if status is not None else None,
            code=code,
            msg=str(body.get("msg", "injected fault")),
            count=count,
            apply=bool(body.get("apply", False)),
        )

    def take_error(self) -> TwirpError | None:
        """The error for this call, if any, using up one of ``count``."""
        if self.code is None or self.status is None:
            return None
        if self.count is not None:
            if self.count <= 0:
                return None
            self.count -= 1
        return TwirpError(self.code, self.msg, self.status)


class FaultInjector:
    """The active faults, by route (method name) or ``*`` for every method."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}

    def set(self, fault: Fault) -> None:
        """Add or replace the fault for ``fault.route``."""
        self._faults[fault.route] = fault

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        """The active faults, for ``GET /sim/faults``."""
        return [vars(f).copy() for f in self._faults.values()]

    async def before(self, method: str) -> tuple[TwirpError | None, bool]:
        """Apply latency; return the error to answer (if any) and whether the call should still run."""
        fault = self._faults.get(method) or self._faults.get(ANY_ROUTE)
        if fault is None:
            return None, True
        if fault.latency_ms > 0:
            await asyncio.sleep(fault.latency_ms / 1000)
        error = fault.take_error()
        return error, error is None or fault.apply
