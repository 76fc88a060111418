"""Redis key names shared by more than one service (names only, no I/O)."""

from __future__ import annotations


def open_sessions_key(org_id: str) -> str:
    """Sorted set of an organisation's sessions not yet terminal (score: when the entry goes stale).

    The API adds a member on admission; the session store removes it when the session reaches a terminal status.
    """
    return f"agentready:open-sessions:{org_id}"


WATCHED_ROOM_TTL_S = 86_400
"""How long a room counts as watched after a watcher token was minted for it (a joined watcher stays past
its token's expiry, so this is far longer than the token's TTL)."""


def watched_room_key(room_name: str) -> str:
    """Set by the API when it mints a watcher token for the room; the flow-events relay calls LiveKit only
    for rooms that have it, so unwatched sessions cost one Redis EXISTS per event instead of a ListParticipants."""
    return f"agentready:watched-room:{room_name}"
