"""Server API tokens signed once per grant set and reused, instead of one HS256 JWT per request, and signed fast.

livekit-api signs a fresh access token for every call (``Service._auth_header``); a session's calls need few distinct
grants (``roomCreate``, ``roomList``, ``roomAdmin`` of its room), so most of that signing is repeated work. A token is
reused for ``reuse_s`` (far inside its 6 h lifetime), at most ``max_entries`` grant sets are kept. The one grant set
new with each session (``roomAdmin`` of its room: ListDispatch and CreateDispatch after a first try, the watchdog) is
signed by :class:`FastSigner`: the claims livekit-api's ``AccessToken`` makes for the grant set without its room, the
room set in, HS256 by hand (AccessToken spends most of its time in ``dataclasses.asdict`` and PyJWT's generic
encoder).
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import datetime
import hashlib
import hmac
import json
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
        key = _key(grants, sip)
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


_VIDEO_FIELDS = tuple(field.name for field in dataclasses.fields(api.VideoGrants))


def _key(grants: Any, sip: Any) -> Any:
    """A hashable key of the grants: their fields' values (a VideoGrants' repr costs more than its signing should)."""
    if isinstance(grants, api.VideoGrants) and sip is None:
        return tuple(getattr(grants, name) for name in _VIDEO_FIELDS)
    return repr((grants, sip))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')


class FastSigner:
    """``Service._auth_header`` for video grants with the claims livekit-api's ``AccessToken`` gives them (same
    issuer, subject, lifetime); anything else (SIP grants) goes to ``otherwise``, livekit-api's own signer."""

    def __init__(
        self, api_key: str, api_secret: str, otherwise: Sign, ttl: datetime.timedelta = api.access_token.DEFAULT_TTL
    ) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._secret = api_secret.encode()
        self._otherwise = otherwise
        self._ttl_s = int(ttl.total_seconds())
        self._templates: dict[Any, dict[str, Any]] = {}  # the claims of each grant set without its room

    def __call__(self, grants: Any = None, sip: Any = None) -> dict[str, str]:
        """The Authorization header for ``grants``."""
        if not isinstance(grants, api.VideoGrants) or sip is not None:
            return self._otherwise(grants, sip)
        roomless = dataclasses.replace(grants, room="")
        shape = _key(roomless, None)
        template = self._templates.get(shape)
        if template is None:
            token = api.AccessToken(self._api_key, self._api_secret).with_grants(roomless)
            template = self._templates[shape] = token.claims.asdict()
        claims = dict(template)
        if grants.room:
            claims["video"] = {**template.get("video", {}), "room": grants.room}
        now = calendar.timegm(time.gmtime())
        claims.update(sub="", iss=self._api_key, nbf=now, exp=now + self._ttl_s)
        signing_input = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())
        return {"authorization": f"Bearer {(signing_input + b'.' + signature).decode()}"}


def reuse_tokens(client: api.LiveKitAPI, reuse_s: float = 300.0) -> api.LiveKitAPI:
    """Make the room and agent-dispatch services of ``client`` sign fast and reuse their tokens; return the client."""
    for service in (client.room, client.agent_dispatch):
        signer = FastSigner(service.api_key, service.api_secret, service._auth_header)
        # the instance attribute shadows livekit-api's per-call signer (Service._auth_header, same signature)
        setattr(service, "_auth_header", ReusedTokens(signer, reuse_s))  # noqa: B010
    return client
