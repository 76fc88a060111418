"""The flow-events relay: each flow event goes into its room, through the server API's SendData, to exactly
the watchers whose role may see it (one call per role, topic ``flow-events``, reliable).

No watcher in the room: nothing is sent and nothing fails. Flow events are observational: a LiveKit
failure after the bounded retries is logged and the event dropped (the session itself is never held up).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from contracts.datachannel import FLOW_EVENTS_TOPIC
from contracts.events import SessionStatusChanged
from contracts.flow_events import FlowEvent, project
from services.dispatcher.ports import LiveKitError, TransientLiveKitError
from services.dispatcher.retries import RetryPolicy, with_retries
from services.runtime.ttl_cache import TtlCache

log = structlog.get_logger(__name__)

_ABORTED = frozenset({"failed", "expired"})


class DataSender(Protocol):
    """The server API's SendData."""

    async def send_data(self, room_name: str, payload: bytes, *, topic: str, destinations: list[str]) -> None:
        """Send ``payload`` on ``topic`` (reliable) to ``destinations`` in ``room_name``."""
        ...


class FlowSequencer(Protocol):
    """Numbers a session's flow events; the same message always gets the same number."""

    async def seq_for(self, session_id: str, message_id: str) -> int:
        """The message's number: the next one of the session, or the one it already got."""
        ...


class RoomWatchers:
    """Identity -> role of each room's watchers, remembered ``ttl_s`` seconds so that a burst of events
    costs one ListParticipants, not one per event (a watcher who just joined may miss up to ``ttl_s``)."""

    def __init__(
        self,
        list_watchers: Callable[[str], Awaitable[dict[str, str]]],
        ttl_s: float,
        *,
        is_watched: Callable[[str], Awaitable[bool]] | None = None,
        max_rooms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._list = list_watchers
        self._is_watched = is_watched
        self._rooms: TtlCache[str, dict[str, str]] = TtlCache(
            ttl_s, name="room_watchers", max_entries=max_rooms, clock=clock
        )

    async def is_watched(self, room_name: str) -> bool:
        """False for a room that no watcher token was ever minted for (always True without that check)."""
        return self._is_watched is None or await self._is_watched(room_name)

    async def watchers(self, room_name: str) -> dict[str, str]:
        """The room's watchers, from the cache while fresh; none, without asking LiveKit, for a room that no
        watcher token was ever minted for."""
        if not await self.is_watched(room_name):
            return {}
        found = await self._rooms.get(room_name, lambda: self._list(room_name))
        return found if found is not None else {}

    def forget(self, room_name: str) -> None:
        """Drop the room's entry (after a failed send: the room or its watchers changed)."""
        self._rooms.discard(room_name)


def by_role(event: FlowEvent, watchers: dict[str, str]) -> dict[str, list[str]]:
    """Role -> identities (sorted) of the watchers who may see ``event``."""
    groups: dict[str, list[str]] = {}
    for identity, role in sorted(watchers.items()):
        if project(event, role, 0) is not None:
            groups.setdefault(role, []).append(identity)
    return groups


async def relay_flow_event(
    event: FlowEvent, watchers: RoomWatchers, sender: DataSender, sequencer: FlowSequencer, retry: RetryPolicy
) -> list[str]:
    """Send ``event`` to the watchers allowed to see it; return the roles it went to (none: nobody to tell)."""
    if not event.room_name:
        return []

    async def attempt() -> list[str]:
        groups = by_role(event, await watchers.watchers(event.room_name))
        if not groups:
            return []
        seq = await sequencer.seq_for(event.session_id, event.message_id)
        try:
            for role, identities in groups.items():
                payload = project(event, role, seq)
                assert payload is not None
                await sender.send_data(
                    event.room_name, payload.to_bytes(), topic=FLOW_EVENTS_TOPIC, destinations=identities
                )
        except TransientLiveKitError:
            watchers.forget(event.room_name)  # a retry lists again: the room may be gone (then: nobody to tell)
            raise
        return list(groups)

    try:
        return await with_retries(retry, attempt)
    except LiveKitError as exc:
        log.warning("flow_event_not_relayed", name=event.name, room=event.room_name, reason=str(exc))
        return []


def lifecycle_event(change: SessionStatusChanged, room_name: str) -> FlowEvent:
    """The ``lifecycle`` flow event of a status change; its id derives from the change's, so a redelivered
    change is the same flow event (same ``seq``). Why a session failed or expired is for admins only."""
    reason = {"reason": change.reason} if change.reason else {}
    aborted = change.to_status in _ABORTED
    return FlowEvent(
        message_id=f"{change.message_id}.flow",
        occurred_at=change.occurred_at,
        correlation_id=change.correlation_id,
        session_id=change.session_id,
        room_name=room_name,
        kind="lifecycle",
        name=f"session.{change.to_status}",
        data={"status": change.to_status, "previous": change.from_status},
        details={} if aborted else reason,
        error=reason if aborted else {},
    )
