"""Which failures the dispatcher tells the room about on ``agent-status``, with fake ports: once per session,
a stable code and a sentence for the end user, never the internal reason."""

from __future__ import annotations

import json
import uuid

from contracts.datachannel import AGENT_STATUS_TOPIC, FAILURE_SENTENCES
from contracts.endings import SENTENCES, EndCode
from contracts.events import SessionDispatchFailed, SessionStatusChanged
from services.dispatcher.failure_notices import tell_if_dispatch_failed, tell_on_change
from services.dispatcher.ports import SessionRecord, TransientLiveKitError
from services.dispatcher.retries import RetryPolicy

from .fakes import FAST, FakeLedger, FakeRooms

INTERNAL = "create room: LiveKit answered 503 unavailable at http://10.0.0.7:7880 (TimeoutError: boom)"


class TalkingRooms(FakeRooms):
    """FakeRooms that records SendData and can fail it."""

    def __init__(self, send_failures: int = 0) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, object], str, list[str]]] = []
        self.send_failures = send_failures

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        if self.send_failures:
            self.send_failures -= 1
            raise TransientLiveKitError("send data: LiveKit answered 503 unavailable")
        self.sent.append((room_name, json.loads(payload), topic, destinations))


async def _remembered(ledger: FakeLedger) -> SessionRecord:
    sid = uuid.uuid4().hex
    await ledger.remember(sid, f"session-{sid}", "{}", "corr", 2e9)
    record = await ledger.get(sid)
    assert record is not None
    return record


def _change(record: SessionRecord, to_status: str) -> SessionStatusChanged:
    return SessionStatusChanged(
        session_id=record.session_id, from_status="dispatched", to_status=to_status, reason=INTERNAL
    )


async def test_own_dispatch_failure_is_told_once_with_its_code_and_no_internal_detail() -> None:
    rooms, ledger = TalkingRooms(), FakeLedger()
    record = await _remembered(ledger)
    failed = SessionDispatchFailed(session_id=record.session_id, reason=INTERNAL, code="no_agent_available")
    await tell_if_dispatch_failed(failed, record.room_name, rooms, ledger, FAST)
    [(room, payload, topic, destinations)] = rooms.sent
    assert (room, topic, destinations) == (record.room_name, AGENT_STATUS_TOPIC, [])
    assert payload["type"] == "agent.failed" and payload["sessionId"] == record.session_id
    assert (payload["stage"], payload["code"]) == ("dispatch", "no_agent_available")
    assert payload["reason"] == FAILURE_SENTENCES["no_agent_available"]
    assert "503" not in json.dumps(payload) and "10.0.0.7" not in json.dumps(payload)
    # The status change that follows finds the room told: nothing more.
    assert not await tell_on_change(_change(record, "failed"), await ledger.get(record.session_id), rooms, ledger, FAST)
    assert len(rooms.sent) == 1


async def test_a_failure_that_could_not_be_told_is_told_on_the_status_change_with_its_own_code() -> None:
    rooms, ledger = TalkingRooms(send_failures=1), FakeLedger()
    record = await _remembered(ledger)
    failed = SessionDispatchFailed(session_id=record.session_id, reason=INTERNAL)
    await tell_if_dispatch_failed(failed, record.room_name, rooms, ledger, RetryPolicy(1, 1, 0.001))
    assert rooms.sent == []
    later = await ledger.get(record.session_id)
    assert later is not None and not later.told_failure
    assert await tell_on_change(_change(record, "failed"), later, rooms, ledger, FAST)
    [(_, payload, _, _)] = rooms.sent
    assert (payload["stage"], payload["code"]) == ("dispatch", "dispatch_failed")


async def test_expiry_is_told_even_with_the_agent_in_the_room() -> None:
    rooms, ledger = TalkingRooms(), FakeLedger()
    record = await _remembered(ledger)
    rooms.agents_in.add(record.room_name)  # the agent does not know the deadline: it cannot say it
    assert await tell_on_change(_change(record, "expired"), record, rooms, ledger, FAST)
    [(_, payload, _, _)] = rooms.sent
    assert (payload["stage"], payload["code"]) == ("readiness", "not_ready_in_time")
    assert payload["reason"] == FAILURE_SENTENCES["not_ready_in_time"]
    redelivered = await ledger.get(record.session_id)
    assert not await tell_on_change(_change(record, "expired"), redelivered, rooms, ledger, FAST)
    assert len(rooms.sent) == 1


async def test_agent_failure_is_left_to_the_agent_in_the_room_else_told() -> None:
    rooms, ledger = TalkingRooms(), FakeLedger()
    present, absent = await _remembered(ledger), await _remembered(ledger)
    rooms.agents_in.add(present.room_name)
    assert not await tell_on_change(_change(present, "failed"), present, rooms, ledger, FAST)
    assert await tell_on_change(_change(absent, "failed"), absent, rooms, ledger, FAST)
    [(room, payload, _, _)] = rooms.sent
    assert room == absent.room_name and (payload["stage"], payload["code"]) == ("agent", "agent_failed")


async def test_an_agent_failure_carries_the_session_end_code() -> None:
    rooms, ledger = TalkingRooms(), FakeLedger()
    record = await _remembered(ledger)
    crashed = _change(record, "failed").model_copy(update={"code": EndCode.AGENT_CRASHED})
    assert await tell_on_change(crashed, record, rooms, ledger, FAST)
    [(_, payload, _, _)] = rooms.sent
    assert (payload["stage"], payload["code"]) == ("agent", "agent_crashed")
    assert payload["reason"] == SENTENCES[EndCode.AGENT_CRASHED]


async def test_other_changes_and_unknown_rooms_tell_nothing() -> None:
    rooms, ledger = TalkingRooms(), FakeLedger()
    record = await _remembered(ledger)
    for status in ("dispatched", "agent_joined", "ready", "ended"):
        assert not await tell_on_change(_change(record, status), record, rooms, ledger, FAST)
    assert not await tell_on_change(_change(record, "expired"), None, rooms, ledger, FAST)
    assert rooms.sent == []
