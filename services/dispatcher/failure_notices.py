"""Tell the user's frontend, on ``agent-status``, that its session failed when no agent is there to say it.

The dispatcher owns the server API, so it sends ``agent.failed`` into the room with ``SendData`` (reliable, to
everyone in it): when its dispatch failed or re-dispatch gave up (from its own outcome, before it is published),
when the readiness deadline passed (the agent does not know the deadline), and when a session failed without
either (an agent that failed before it reached the room). The end user gets a stable code and a short sentence;
the detail goes to logs and, as the lifecycle flow event's ``error``, to admins on ``flow-events``. At least once:
the ledger remembers a room that was told, so redeliveries and later triggers stay quiet; a frontend keeps the
first ``agent.failed`` it gets. Best effort: a room that is gone, or a LiveKit failure after the bounded
retries, is logged and nothing else happens (the frontend still has SSE and GET).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from contracts.datachannel import (
    AGENT_STATUS_TOPIC,
    FAILURE_AGENT,
    FAILURE_DEADLINE,
    FAILURE_DISPATCH,
    FAILURE_NO_AGENT,
    FAILURE_SENTENCES,
    AgentFailedPayload,
)
from contracts.endings import SENTENCES as END_SENTENCES
from contracts.endings import EndCode
from contracts.events import Event, SessionDispatchFailed, SessionStatusChanged
from services.dispatcher.ports import LiveKitError, SessionLedger, SessionRecord
from services.dispatcher.retries import RetryPolicy, with_retries

log = structlog.get_logger(__name__)


class StatusRoom(Protocol):
    """What telling a room needs of LiveKit: whether our agent is in it, and SendData."""

    async def agent_present(self, room_name: str) -> bool:
        """Whether an agent of ours is connected to the room."""
        ...

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        """Send ``payload`` on ``topic`` (reliable) to ``destinations`` (empty: everyone) in the room."""
        ...


@dataclass(frozen=True)
class Notice:
    """What the frontend is told: the stage that failed and a stable code (its sentence comes with it)."""

    stage: str
    code: str

    def payload(self, session_id: str, at: datetime) -> AgentFailedPayload:
        """The ``agent.failed`` message for ``session_id``."""
        stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return AgentFailedPayload(
            sessionId=session_id, stage=self.stage, reason=user_sentence(self.code), timestamp=stamp, code=self.code
        )


def user_sentence(code: str) -> str:
    """What the end user reads for ``code``: ours, else the session end's sentence (contracts.endings)."""
    if code in FAILURE_SENTENCES:
        return FAILURE_SENTENCES[code]
    known = {end.value for end in EndCode}
    return END_SENTENCES[EndCode(code)] if code in known else FAILURE_SENTENCES[FAILURE_AGENT]


def notice_for_dispatch_failure(event: SessionDispatchFailed) -> Notice:
    """The notice of the dispatcher's own failure (unknown codes of newer senders fall back to the generic one)."""
    code = event.code if event.code in (FAILURE_DISPATCH, FAILURE_NO_AGENT) else FAILURE_DISPATCH
    return Notice("dispatch", code)


def notice_for_change(event: SessionStatusChanged, record: SessionRecord) -> Notice | None:
    """The notice a status change calls for, if any: an expiry; a failure of the dispatcher's own (its code), or
    else the one the session store recorded (an agent's)."""
    if event.to_status == "expired":
        return Notice("readiness", FAILURE_DEADLINE)
    if event.to_status != "failed":
        return None
    if record.failure_code in (FAILURE_DISPATCH, FAILURE_NO_AGENT):
        return Notice("dispatch", record.failure_code)
    code = str(event.code) if event.code else FAILURE_AGENT  # the session store's end code, e.g. agent_crashed
    return Notice("dispatch" if code == FAILURE_DISPATCH else "agent", code)


async def tell_room(
    session_id: str,
    room_name: str,
    notice: Notice,
    room: StatusRoom,
    ledger: SessionLedger,
    retry: RetryPolicy,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> bool:
    """Send ``agent.failed`` to everyone in the room, then record the notice; False when it could not be sent."""
    data = notice.payload(session_id, clock()).to_bytes()
    try:
        await with_retries(retry, lambda: room.send_data(room_name, data, topic=AGENT_STATUS_TOPIC, destinations=[]))
    except LiveKitError as exc:
        log.warning("failure_not_told", room=room_name, code=notice.code, reason=str(exc))
        await ledger.note_failure(session_id, notice.code, told=False)
        return False
    await ledger.note_failure(session_id, notice.code, told=True)
    log.info("failure_told", room=room_name, stage=notice.stage, code=notice.code)
    return True


async def tell_if_dispatch_failed(
    outcome: Event | None, room_name: str, room: StatusRoom, ledger: SessionLedger, retry: RetryPolicy
) -> None:
    """Tell the room when ``outcome`` (about to be published) is the dispatcher's own failure: once, before the
    session's status changes (the status change tries again if this could not send)."""
    if isinstance(outcome, SessionDispatchFailed) and room_name:
        await tell_room(outcome.session_id, room_name, notice_for_dispatch_failure(outcome), room, ledger, retry)


async def tell_on_change(
    event: SessionStatusChanged,
    record: SessionRecord | None,
    room: StatusRoom,
    ledger: SessionLedger,
    retry: RetryPolicy,
) -> bool:
    """Tell the room about an expiry or a failure nobody told it about; True when a notice was sent.

    A failed session whose agent is still in the room was told by that agent (it reports its own failures).
    """
    if record is None or not record.room_name or record.told_failure:
        return False
    notice = notice_for_change(event, record)
    if notice is None:
        return False
    if notice.stage == "agent":
        try:
            if await with_retries(retry, lambda: room.agent_present(record.room_name)):
                return False
        except LiveKitError as exc:
            log.warning("failure_not_told", room=record.room_name, code=notice.code, reason=str(exc))
            return False
    return await tell_room(event.session_id, record.room_name, notice, room, ledger, retry)
