"""Flows as the session routes read them: through a brief in-process cache in front of the repository."""

from __future__ import annotations

from services.api.repository import ApiRepository, Flow
from services.runtime.ttl_cache import TtlCache


class CachedFlows:
    """An organisation's flows by id, from the cache when possible (the session POST's only database read).

    While PostgreSQL is unreachable a flow read before is still served (see ``TtlCache``); an unknown flow is not.
    """

    def __init__(self, cache: TtlCache[tuple[str, str], Flow], repo: ApiRepository) -> None:
        self._cache = cache
        self._repo = repo

    async def get(self, org_id: str, flow_id: str) -> Flow | None:
        """The flow, or None when the organisation has no flow of that id."""
        return await self._cache.get((org_id, flow_id), lambda: self._repo.get_flow(org_id, flow_id))

    def forget(self, org_id: str, flow_id: str) -> None:
        """Drop the cached copy (the flow was changed)."""
        self._cache.discard((org_id, flow_id))
