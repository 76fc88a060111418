"""Why a session ended: a stable code a program can match, and a sentence a person can read.

Every terminal status carries one of these codes (``sessions.end_code``, ``session.status_changed.code``).
"""

from __future__ import annotations

from enum import StrEnum


class EndCode(StrEnum):
    """The stable reason codes of a session's end."""

    ENDED_BY_REQUEST = "ended_by_request"  # DELETE /api/sessions/{id}
    USER_LEFT = "user_left"  # the user left and did not come back within the grace period
    ROOM_CLOSED = "room_closed"  # LiveKit closed the room (empty or departure timeout, deleted)
    AGENT_JOB_ENDED = "agent_job_ended"  # the agent's job was shut down (worker drained, job cancelled)
    AGENT_CRASHED = "agent_crashed"  # the agent's job raised
    MAX_DURATION = "max_duration"  # the session reached its flow's maximum duration
    NO_USER_JOINED = "no_user_joined"  # nobody joined within the wait
    AGENT_FAILED = "agent_failed"  # the agent could not become ready (a readiness stage failed)
    DISPATCH_FAILED = "dispatch_failed"  # the dispatcher could not create the room or the dispatch
    NOT_READY_IN_TIME = "not_ready_in_time"  # the readiness deadline passed


SENTENCES: dict[EndCode, str] = {
    EndCode.ENDED_BY_REQUEST: "The session was ended on request.",
    EndCode.USER_LEFT: "The user left and did not come back.",
    EndCode.ROOM_CLOSED: "The room was closed.",
    EndCode.AGENT_JOB_ENDED: "The agent ended the session.",
    EndCode.AGENT_CRASHED: "The agent stopped unexpectedly.",
    EndCode.MAX_DURATION: "The session reached its maximum duration.",
    EndCode.NO_USER_JOINED: "Nobody joined the session in time.",
    EndCode.AGENT_FAILED: "The agent could not start the session.",
    EndCode.DISPATCH_FAILED: "No agent could be sent to the session.",
    EndCode.NOT_READY_IN_TIME: "The agent was not ready in time.",
}


def sentence(code: EndCode | str, detail: str | None = None) -> str:
    """The human sentence of ``code``, followed by ``detail`` when there is one."""
    text = SENTENCES.get(EndCode(code), str(code))
    return f"{text} ({detail})" if detail else text
