"""Clean-up when a session is over (ended, failed, expired): stop watching it, never dispatch it again,
delete its dispatches and its room. A room that is already gone is success."""

from __future__ import annotations

import structlog

from contracts.events import SessionStatusChanged
from contracts.status import TERMINAL
from services.dispatcher.dispatch_state import DispatchState
from services.dispatcher.ports import LiveKitError, LiveKitRooms, RoomLocks, SessionLedger, SessionRecord
from services.dispatcher.retries import RetryPolicy, with_retries

log = structlog.get_logger(__name__)


def is_over(event: SessionStatusChanged) -> bool:
    """Whether the change puts the session in a terminal status (the only changes clean-up acts on)."""
    return event.to_status in {status.value for status in TERMINAL}


async def clean_up_session(
    event: SessionStatusChanged, rooms: LiveKitRooms, locks: RoomLocks, ledger: SessionLedger, retry: RetryPolicy
) -> bool:
    """Close the session in the ledger, then remove its room (under the room's lock, so a dispatch in
    progress finishes first); True when nothing of it is left in LiveKit (or nothing was to do)."""
    if not is_over(event):
        return True
    return await remove_room_of(event, await ledger.close(event.session_id), rooms, locks, retry)


async def remove_room_of(
    event: SessionStatusChanged, record: SessionRecord | None, rooms: LiveKitRooms, locks: RoomLocks, retry: RetryPolicy
) -> bool:
    """Remove the room of a session already closed in the ledger (``record``: as it was), under the room's lock;
    True when nothing of it is left in LiveKit (or nothing was to do)."""
    if record is None or not record.room_name:
        # The request was never seen here: the closed mark stops it from being dispatched later.
        log.info("cleanup_nothing_to_remove", to_status=event.to_status)
        return True
    # The agent of the session's first and only dispatch joined: no job of ours can still be on offer, so the
    # room's deletion takes its dispatch and job with it. After a re-dispatch, a replaced dispatch's agent may have
    # been the one that joined while the new dispatch's job is still offered: that one is deleted explicitly.
    agent_joined = record.state == DispatchState.JOINED and record.attempt <= 1
    try:
        async with locks.hold(record.room_name):
            await with_retries(retry, lambda: rooms.remove_room(record.room_name, agent_joined=agent_joined))
    except LiveKitError as exc:
        # Not raised: redelivery would not help more than the bounded retries did. LiveKit closes the
        # room by itself after its empty/departure timeout; the log says which room is left behind.
        log.error("cleanup_failed", room=record.room_name, to_status=event.to_status, reason=str(exc))
        return False
    # debug: the session's one info line is its dispatch (``dispatched``); failures above are logged as errors
    log.debug("cleaned_up", room=record.room_name, to_status=event.to_status, status_reason=event.reason)
    return True
