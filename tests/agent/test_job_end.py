"""How a job ends after ready: each way out has its code, and the broker hears of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from contracts.endings import EndCode
from contracts.events import AgentJobEnded
from services.agent.ending import JobEnd, failed_readiness, report_job_end, stay_with_user
from services.agent.room import RoomClosed
from tests.agent.fakes import FakePublisher


@dataclass
class ScriptedRoom:
    """A room whose arrivals are scripted: each wait_for_participant takes the next answer (an identity or an error)."""

    arrivals: list[str | Exception]
    waits: list[float] = field(default_factory=list)
    watched: list[str | None] = field(default_factory=list)

    async def connect(self) -> None:
        return None

    async def wait_for_participant(self, timeout: float) -> str:
        self.waits.append(timeout)
        answer = self.arrivals.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def publish_data(self, payload: bytes, *, topic: str, reliable: bool = True) -> None:
        return None

    async def wait_until_over(self, identity: str | None) -> None:
        self.watched.append(identity)  # the user leaves at once

    async def disconnect(self) -> None:
        return None


class Seen:
    def __init__(self) -> None:
        self.users: list[str] = []

    async def __call__(self, identity: str) -> None:
        self.users.append(identity)


async def test_a_user_who_leaves_for_good_ends_the_job_as_user_left_after_the_grace() -> None:
    room, seen = ScriptedRoom([TimeoutError()]), Seen()
    end = await stay_with_user(room, "user-1", user_wait_s=30, rejoin_grace_s=7, user_seen=seen)
    assert end.code is EndCode.USER_LEFT and "7 s" in end.reason
    assert room.waits == [7] and seen.users == ["user-1"]


async def test_a_user_who_comes_back_keeps_the_job_until_the_room_closes() -> None:
    room, seen = ScriptedRoom(["user-1", RoomClosed("gone")]), Seen()
    end = await stay_with_user(room, "user-1", user_wait_s=30, rejoin_grace_s=5, user_seen=seen)
    assert end.code is EndCode.ROOM_CLOSED
    assert seen.users == ["user-1", "user-1"] and room.watched == ["user-1", "user-1"]


async def test_nobody_joining_after_ready_ends_the_job_as_no_user_joined() -> None:
    room, seen = ScriptedRoom([TimeoutError()]), Seen()
    end = await stay_with_user(room, None, user_wait_s=3, rejoin_grace_s=5, user_seen=seen)
    assert end.code is EndCode.NO_USER_JOINED and room.waits == [3] and seen.users == []


def test_a_failed_readiness_names_its_code() -> None:
    assert failed_readiness("wait_for_user", "no user").code is EndCode.NO_USER_JOINED
    assert failed_readiness("providers", "boom").code is EndCode.AGENT_FAILED
    assert not failed_readiness("providers", "boom").was_ready


async def test_the_job_end_reaches_the_broker_and_a_broken_broker_does_not_raise() -> None:
    sid = uuid.uuid4().hex
    publisher = FakePublisher()
    await report_job_end(publisher, sid, "corr", "AJ_1", JobEnd(EndCode.USER_LEFT, "left"))
    [event] = publisher.events
    assert isinstance(event, AgentJobEnded)
    assert (event.session_id, event.code, event.job_id, event.correlation_id) == (sid, "user_left", "AJ_1", "corr")
    assert event.was_ready is True
    broken = FakePublisher(error=ConnectionError("down"))
    await report_job_end(broken, sid, None, "AJ_1", JobEnd(EndCode.USER_LEFT, "x"))
