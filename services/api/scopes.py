"""What a secret API key may do (its scopes), and the 403 a request gets when its credential may not do something.

Publishable keys (``pk_``) carry no scopes: they may only start sessions of their flows
(:mod:`services.api.publishable_keys`). Keys created before scopes existed were given every scope by the migration.
"""

from __future__ import annotations

from collections.abc import Iterable

SESSIONS = "sessions"  # create, read and end sessions
FLOWS = "flows"  # create, read and change flows
WATCH_PREFIX = "watch:"  # watch:<role>: mint watcher tokens of that role
WEBHOOKS = "webhooks"  # register lifecycle webhook endpoints, read their delivery log, replay

OPS = "ops"  # operators' views of the organisation: stage latencies, the agent's presence in a session's room

ALL_SCOPES: tuple[str, ...] = (SESSIONS, FLOWS, "watch:monitor", "watch:supervisor", "watch:admin", WEBHOOKS, OPS)
DEFAULT_SCOPES: tuple[str, ...] = (SESSIONS, FLOWS, "watch:monitor")  # a new secret key without --scope


class AccessDeniedError(Exception):
    """The credential is valid but may not do this: answered with 403."""


def watch_scope(role: str) -> str:
    """The scope that lets a key mint watcher tokens of ``role``."""
    return WATCH_PREFIX + role


def checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` in the canonical order, without duplicates; ValueError naming any unknown scope."""
    given = set(scopes)
    unknown = sorted(given - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known scopes: {' '.join(ALL_SCOPES)}")
    return tuple(s for s in ALL_SCOPES if s in given)


def missing_scope(scope: str) -> AccessDeniedError:
    """The 403 for a secret key without ``scope``, saying how to get a key that has it."""
    return AccessDeniedError(
        f"this API key lacks the scope {scope!r}; create a key that has it: "
        f"python -m services.api create-key --org ORG --scope {scope}"
    )
