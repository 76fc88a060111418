"""The dispatcher's per-session states, as the session ledger records them.

``requested`` -> ``watching`` (dispatched, the watchdog armed) -> ``joined`` | ``closed``. A closed session is never
dispatched again; a joined or closed one is never armed again. (The session's own status machine, which the
session store owns, is :mod:`contracts.status`; these states are the dispatcher's bookkeeping only.)
"""

from __future__ import annotations

from enum import StrEnum


class DispatchState(StrEnum):
    """Where a session is in the dispatcher's hands (stored as its value in the ledger's hash)."""

    REQUESTED = "requested"
    """Remembered; no dispatch armed yet."""
    WATCHING = "watching"
    """Dispatched; the watchdog re-dispatches if no agent joins in time."""
    JOINED = "joined"
    """An agent joined: never watched or dispatched again."""
    CLOSED = "closed"
    """The session is over (or given up): never dispatched or watched again."""
