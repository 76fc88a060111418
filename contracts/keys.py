"""Every Redis key name the services build (names only, no I/O), so a reader finds them in one place.

Stream names (and their dead-letter streams) live in :mod:`contracts.streams`; everything else a service keeps in
Redis is named here.
"""

from __future__ import annotations

import hashlib

PREFIX = "agentready"


def open_sessions_key(org_id: str) -> str:
    """Sorted set of an organisation's sessions not yet terminal (score: when the entry goes stale).

    The API adds a member on admission; the session store removes it when the session reaches a terminal status.
    """
    return f"{PREFIX}:open-sessions:{org_id}"


def session_snapshot_key(session_id: str) -> str:
    """Where the API keeps a requested session until the session store has recorded it."""
    return f"{PREFIX}:session-requested:{session_id}"


def idempotency_key(org_id: str, key: str) -> str:
    """Where a request's Idempotency-Key is remembered, per organisation (hashed: keys are client-chosen)."""
    return f"{PREFIX}:idempotency:{org_id}:{hashlib.sha256(key.encode()).hexdigest()}"


WATCHED_ROOM_TTL_S = 86_400
"""How long a room counts as watched after a watcher token was minted for it (a joined watcher stays past
its token's expiry, so this is far longer than the token's TTL)."""


def watched_room_key(room_name: str) -> str:
    """Set by the API when it mints a watcher token for the room; the flow-events relay calls LiveKit only
    for rooms that have it, so unwatched sessions cost one Redis EXISTS per event instead of a ListParticipants."""
    return f"{PREFIX}:watched-room:{room_name}"


def dispatch_lock_key(room_name: str) -> str:
    """The dispatcher's lock on a room: one replica at a time creates, replaces or removes its dispatch."""
    return f"{PREFIX}:dispatch-lock:{room_name}"


def ledger_session_key(agent_name: str, session_id: str) -> str:
    """The dispatcher's hash of one session's dispatch state (namespaced by agent name: deployments sharing a
    Redis never touch each other's sessions)."""
    return f"{PREFIX}:dispatcher:{agent_name}:session:{session_id}"


def ledger_watchdog_key(agent_name: str) -> str:
    """The dispatcher's sorted set of watch deadlines (score: when the session's agent should have joined)."""
    return f"{PREFIX}:dispatcher:{agent_name}:watchdog"


def flow_seq_key(session_id: str) -> str:
    """The dispatcher's per-session sequence of relayed flow events (and the message ids already numbered)."""
    return f"{PREFIX}:flow-seq:{session_id}"


def delivery_failures_key(stream: str, group: str) -> str:
    """Every service's hash of failure counts and last errors of ``group``'s pending messages on ``stream``
    (services.runtime.dead_letters: what decides when a message is dead-lettered)."""
    return f"{stream}:failures:{group}"


PUBLISHABLE_RATE_WINDOW_S = 60
"""The API's rate window for publishable keys: at most PUBLISHABLE_RATE_PER_MIN session requests per window."""


def publishable_rate_key(key_id: str, address: str) -> str:
    """The API's counter of session requests by one client address with one publishable key (expires with its
    window; the address is hashed: IPv6 addresses hold colons)."""
    return f"{PREFIX}:pk-rate:{key_id}:{hashlib.sha256(address.encode()).hexdigest()[:32]}"
