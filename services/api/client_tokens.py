"""Per-session client tokens: the ``clientToken`` of a 202, a short-lived HS256 JWT a browser may hold.

It reads one session's status, follows its SSE stream and ends it; nothing else. Its signing key is derived from
AGENT_CREDENTIAL_SECRET (HMAC with a label of its own), and its audience differs from the agent credential's, so
neither token is ever accepted as the other.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import jwt

from contracts.events import utc_now
from services.api.auth import AuthError
from services.api.hs256 import encode_hs256
from services.api.scopes import AccessDeniedError

AUDIENCE = "agentready-client"
_KEY_LABEL = b"agentready client token v1"


def looks_like_jwt(credential: str) -> bool:
    """True when a bearer credential has a JWT's shape (API keys never do: they hold no dots)."""
    return credential.startswith("eyJ") and credential.count(".") == 2


@dataclass(frozen=True)
class ClientTokens:
    """Mints and checks client tokens with one key."""

    key: bytes
    ttl_s: int

    @classmethod
    def from_secret(cls, secret: str, ttl_s: int) -> ClientTokens:
        """Client tokens whose key is derived from ``secret`` (the agent credential secret)."""
        return cls(hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest(), ttl_s)

    def mint(self, session_id: str, org_id: str, now: datetime | None = None) -> str:
        """A token for ``session_id`` of ``org_id``, valid ``ttl_s`` from ``now``.

        Encoded with :func:`~services.api.hs256.encode_hs256` rather than PyJWT (which verifies it): every session
        POST mints one (README "Benchmark").
        """
        issued = int((now or utc_now()).timestamp())
        claims = {"sub": session_id, "org": org_id, "aud": AUDIENCE, "iat": issued, "exp": issued + self.ttl_s}
        return encode_hs256(claims, self.key)

    def verify(self, token: str) -> tuple[str, str]:
        """``(session id, organisation)`` of a valid token; AuthError (401) when it is invalid or expired."""
        try:
            payload = jwt.decode(
                token, self.key, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "sub", "org"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the client token has expired; start a new session or ask your backend") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid client token: {exc}") from exc
        return str(payload["sub"]), str(payload["org"])

    def org_for(self, token: str, session_id: str) -> str:
        """The organisation of ``token`` if it is valid for ``session_id``: AuthError (401) when invalid or expired,
        AccessDeniedError (403) when it was issued for another session."""
        token_session, org_id = self.verify(token)
        if token_session != session_id:
            raise AccessDeniedError("this client token was issued for another session; it works for its own only")
        return org_id


def only_own_session() -> AccessDeniedError:
    """The 403 for a client token used on a route it does not open."""
    return AccessDeniedError(
        "a client token only reads, follows (GET .../events) or ends (DELETE) its own session; "
        "use a secret API key from your backend for anything else"
    )
