"""``GET /api/sessions/{id}/events``: Server-Sent Events, one per status change, closing at a terminal status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from contracts.events import utc_now
from contracts.status import TERMINAL, SessionStatus, can_transition
from services.api.access import StreamOrgDep
from services.api.dependencies import AdmissionDep, FanoutDep, RepoDep, SettingsDep, StreamSlotsDep
from services.api.errors import NotFoundError
from services.api.fanout import DROPPED, StatusFanout
from services.api.metrics import SSE_CONNECTIONS
from services.api.params import SessionId
from services.api.schemas import ErrorBody, SessionStages, StatusEvent
from services.api.session_core import SessionAdmission, SessionRows, find_session, stages_from_times
from services.api.settings import ApiSettings
from services.api.stream_slots import SlotStreamingResponse

router = APIRouter(
    tags=["sessions"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 429: {"model": ErrorBody}}
)

_RETRY_MS = 2000


def status_frame(
    session_id: str,
    status: str,
    reason: str | None,
    at: datetime,
    code: str | None = None,
    stages: SessionStages | None = None,
) -> str:
    """One SSE event named ``status`` whose data is a StatusEvent."""
    event = StatusEvent(session_id=session_id, status=status, reason=reason, end_code=code, at=at, stages=stages)
    data = event.model_dump_json(by_alias=True)
    return f"event: status\ndata: {data}\n\n"


def _moves(status: SessionStatus, target: SessionStatus) -> bool:
    """True when ``target`` is a forward move from ``status`` (not late, not a duplicate)."""
    return target != status and can_transition(status, target)


async def status_stream(
    session_id: str,
    org_id: str,
    fanout: StatusFanout,
    repo: SessionRows,
    admission: SessionAdmission,
    settings: ApiSettings,
) -> AsyncIterator[str]:
    """The current status first, then each forward change, until a terminal status (or the client lags)."""
    # listen before reading: no change falls in between
    with SSE_CONNECTIONS.track_inprogress(), fanout.listen(session_id) as listener:
        current = await find_session(org_id, session_id, repo, admission)
        if current is None:  # gone since the route checked (snapshot expired): nothing to follow
            return
        status = SessionStatus(current.status)
        first = status_frame(session_id, status.value, current.reason, utc_now(), current.end_code, current.stages)
        yield f"retry: {_RETRY_MS}\n" + first
        wait_s = min(settings.sse_recheck_s, settings.sse_heartbeat_s)
        while status not in TERMINAL:
            try:
                change = await asyncio.wait_for(listener.queue.get(), timeout=wait_s)
            except TimeoutError:
                # The session store announces a change once committed, but one whose announcement failed is
                # announced only by its outbox's sweep, much later. Re-reading the status closes that gap.
                wait_s = settings.sse_heartbeat_s
                latest = await find_session(org_id, session_id, repo, admission)
                if latest is not None and _moves(status, SessionStatus(latest.status)):
                    status = SessionStatus(latest.status)
                    yield status_frame(
                        session_id, status.value, latest.reason, utc_now(), latest.end_code, latest.stages
                    )
                else:
                    yield ": keep-alive\n\n"  # a comment: keeps proxies from closing an idle stream
                continue
            if change is DROPPED:
                yield ": too slow; reconnect to get the current status\n\n"
                return
            target = SessionStatus(change.to_status)
            if not _moves(status, target):
                continue  # late or duplicate: the status only moves forward
            status = target
            stages = stages_from_times(change.stages.model_dump()) if change.stages is not None else None
            yield status_frame(session_id, status.value, change.reason, change.occurred_at, change.code, stages)


@router.get(
    "/api/sessions/{session_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": ErrorBody}},
)
async def session_events(
    session_id: SessionId,
    org_id: StreamOrgDep,
    repo: RepoDep,
    admission: AdmissionDep,
    fanout: FanoutDep,
    settings: SettingsDep,
    slots: StreamSlotsDep,
) -> StreamingResponse:
    """Follow a session's status: ``event: status`` with ``{sessionId, status, reason, endCode, at, stages}`` per
    change (``stages``: when each stage was reached, greeting times included).

    A browser's EventSource sends the session's clientToken as ``?access_token=`` (it cannot send headers).
    An organisation holds at most MAX_SSE_STREAMS_PER_ORG open streams per API process (429 beyond)."""
    slot = slots.take(org_id)  # over the cap: 429 before any lookup
    try:
        if await find_session(org_id, session_id, repo, admission) is None:
            raise NotFoundError(f"session {session_id!r} not found")
    except BaseException:
        slot.release()
        raise
    return SlotStreamingResponse(
        status_stream(session_id, org_id, fanout, repo, admission, settings),
        slot=slot,  # released when the response ends, however it ends
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
