"""Server API tokens signed once per grant set and reused, instead of one HS256 JWT per request.

livekit-api signs a fresh access token for every call (``Service._auth_header``); a session's calls need few distinct
grants (``roomCreate``, ``roomList``, ``roomAdmin`` of its room), so most of that signing is repeated work. A token is
reused for ``reuse_s`` (far inside its 6 h lifetime), at most ``max_entries`` grant sets are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from livekit import api

Sign = Callable[..., dict[str, str]]


class ReusedTokens:
    """Wraps a service's header signer: the same grants within ``reuse_s`` get the same (still valid) token."""

    def __init__(
        self, sign: Sign, reuse_s: float = 300.0, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sign = sign
        self._reuse_s = reuse_s
        self._max_entries = max_entries
        self._clock = clock
        self._signed: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()

    def __call__(self, grants: Any = None, sip: Any = None) -> dict[str, str]:
        """The Authorization header for ``grants`` (and ``sip``): a reused one while fresh, else newly signed."""
        key = repr((grants, sip))
        now = self._clock()
        found = self._signed.get(key)
        if found is not None and now - found[0] < self._reuse_s:
            return found[1]
        headers = self._sign(grants, sip)
        self._signed[key] = (now, headers)
        self._signed.move_to_end(key)
        while len(self._signed) > self._max_entries:
            self._signed.popitem(last=False)
        return headers


def reuse_tokens(client: api.LiveKitAPI, reuse_s: float = 300.0) -> api.LiveKitAPI:
    """Make the room and agent-dispatch services of ``client`` reuse their tokens; return the client."""
    for service in (client.room, client.agent_dispatch):
        # the instance attribute shadows livekit-api's per-call signer (Service._auth_header, same signature)
        setattr(service, "_auth_header", ReusedTokens(service._auth_header, reuse_s))  # noqa: B010
    return client
