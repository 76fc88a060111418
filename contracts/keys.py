"""Redis key names shared by more than one service (names only, no I/O)."""

from __future__ import annotations


def open_sessions_key(org_id: str) -> str:
    """Sorted set of an organisation's sessions not yet terminal (score: when the entry goes stale).

    The API adds a member on admission; the session store removes it when the session reaches a terminal status.
    """
    return f"agentready:open-sessions:{org_id}"
