"""How an agent job ends, and telling the broker so (``agent.job_ended``), whatever the reason.

After ``agent.ready`` the job stays while there is someone to talk to: a user who leaves gets a grace period to
come back, a user who never arrives gets the user wait. Each way out has a stable code (``contracts.endings``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from contracts.endings import EndCode, sentence
from contracts.events import AgentJobEnded, UserPresenceChanged
from services.agent.metadata import SessionMetadata
from services.agent.room import AgentRoom, RoomClosed
from services.runtime.publishing import EventPublisher

log = structlog.get_logger(__name__)

REPORT_TIMEOUT_SECONDS = 5.0

UserSeen = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class JobEnd:
    """Why a job ends: a code for programs, a sentence for people; and whether it had made the session ready."""

    code: EndCode
    reason: str
    was_ready: bool = True


def job_end(code: EndCode, detail: str | None = None, *, was_ready: bool = True) -> JobEnd:
    """A :class:`JobEnd` whose reason is the code's sentence plus ``detail``."""
    return JobEnd(code, sentence(code, detail), was_ready)


def failed_readiness(stage: str | None, reason: str | None) -> JobEnd:
    """The end of a job whose readiness failed (``agent.failed`` already said so)."""
    code = EndCode.NO_USER_JOINED if stage == "wait_for_user" else EndCode.AGENT_FAILED
    return job_end(code, f"{stage}: {reason}", was_ready=False)


async def stay_with_user(
    room: AgentRoom, user: str | None, *, user_wait_s: float, rejoin_grace_s: float, user_seen: UserSeen
) -> JobEnd:
    """Keep the job while someone is there to talk to; return why it ends.

    When readiness did not wait for the user, the user still gets ``user_wait_s`` to arrive. A user who leaves
    may come back (a page reload) within ``rejoin_grace_s``; ``user_seen`` is told of every arrival.
    """
    if user is None:
        try:
            user = await room.wait_for_participant(user_wait_s)
        except TimeoutError:
            return job_end(EndCode.NO_USER_JOINED, f"nobody joined within {user_wait_s:g} s of ready")
        except RoomClosed:
            return job_end(EndCode.ROOM_CLOSED)
    while True:
        await user_seen(user)
        await room.wait_until_over(user)
        try:
            user = await room.wait_for_participant(rejoin_grace_s)
        except TimeoutError:
            return job_end(EndCode.USER_LEFT, f"not back within {rejoin_grace_s:g} s")
        except RoomClosed:
            return job_end(EndCode.ROOM_CLOSED)


def presence_reporter(publisher: EventPublisher, session: SessionMetadata) -> UserSeen:
    """Tell the session store the user is in the room (so it never ends the session as 'nobody joined')."""

    async def seen(identity: str) -> None:
        event = UserPresenceChanged(
            session_id=session.session_id,
            correlation_id=session.correlation_id,
            room_name=session.room_name,
            identity=identity,
            present=True,
            source="agent",
        )
        await _best_effort(publisher.publish(event), "report_presence", session.session_id)

    return seen


async def report_job_end(
    publisher: EventPublisher, session_id: str, correlation_id: str | None, job_id: str, end: JobEnd
) -> None:
    """Publish ``agent.job_ended`` (bounded; a failure is logged: the session store's scans are the backstop)."""
    ids = {"correlation_id": correlation_id} if correlation_id else {}
    event = AgentJobEnded(
        session_id=session_id, job_id=job_id, code=end.code, reason=end.reason, was_ready=end.was_ready, **ids
    )
    log.info("agent_job_ended", session_id=session_id, job_id=job_id, code=end.code, reason=end.reason)
    await _best_effort(publisher.publish(event), "report_job_end", session_id)


async def _best_effort(action: Awaitable[None], what: str, session_id: str) -> None:
    try:
        async with asyncio.timeout(REPORT_TIMEOUT_SECONDS):
            await action
    except Exception as exc:  # noqa: BLE001 - a lost report must not fail the job; the store's scans are the backstop
        log.error("report_failed", target=what, session_id=session_id, error=f"{type(exc).__name__}: {exc}")
