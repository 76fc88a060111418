"""The dispatcher's counters move with what it does: first dispatches, re-dispatches, give-ups, and LiveKit errors
(the last against the simulator through the real livekit-api client)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from contracts.events import SessionDispatched, SessionDispatchFailed
from contracts.streams import SESSION_DISPATCHED
from devstack.livekit_sim import Simulator
from devstack.livekit_sim.faults import Fault
from services.dispatcher.handlers import on_requested, settle_due
from services.dispatcher.ports import PermanentLiveKitError

from .conftest import Publish, wait_for_events
from .fakes import FakeLedger, session_request
from .test_handlers import FakeServer, Recorded, _deps


class Told(FakeServer):
    """A server that takes the agent.failed the dispatcher sends a room nobody told."""

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        return None


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_first_dispatch_redispatch_and_failure_are_counted() -> None:
    first = _value("agentready_dispatches_total", attempt="first")
    again = _value("agentready_dispatches_total", attempt="redispatch")
    failed = _value("agentready_dispatch_failures_total", code="dispatch_failed")
    rooms, ledger, published = FakeServer(), FakeLedger(), Recorded()
    deps, request = _deps(rooms, ledger, published), session_request()
    await on_requested(request, deps)
    assert _value("agentready_dispatches_total", attempt="first") == first + 1

    await settle_due(ledger.records[request.session_id], deps)  # no agent joined in time: the watchdog's turn
    assert [type(e) for e in published.events] == [SessionDispatched, SessionDispatched]
    assert _value("agentready_dispatches_total", attempt="redispatch") == again + 1

    refusing = Told(failures=[PermanentLiveKitError("create room: LiveKit answered 401")])
    await on_requested(session_request(), _deps(refusing, FakeLedger(), published))
    assert isinstance(published.events[-1], SessionDispatchFailed)
    assert _value("agentready_dispatch_failures_total", code="dispatch_failed") == failed + 1


async def test_livekit_errors_are_counted_by_kind_and_code(
    sim: Simulator, running: Publish, dispatcher_redis_url: str
) -> None:
    before = _value("agentready_livekit_call_errors_total", kind="transient", code="unavailable")
    sim.faults.set(Fault(route="CreateRoom", status=503, code="unavailable", count=2))
    request = session_request()
    await running(request)
    await wait_for_events(
        dispatcher_redis_url,
        SESSION_DISPATCHED,
        SessionDispatched,
        lambda events: any(e.session_id == request.session_id for e in events),
    )
    assert _value("agentready_livekit_call_errors_total", kind="transient", code="unavailable") == before + 2
