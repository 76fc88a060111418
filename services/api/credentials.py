"""The agent's credential: a short-lived HS256 JWT minted with the session, good for that one session only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from services.api.hs256 import encode_hs256

AUDIENCE = "agentready-agent"


class CredentialError(Exception):
    """The credential is missing, invalid, expired or for another session: answered with 403."""


@dataclass(frozen=True)
class AgentClaims:
    """Who the credential speaks for."""

    session_id: str
    flow_id: str
    org_id: str


@dataclass(frozen=True)
class CredentialIssuer:
    """Mints and checks agent credentials with one secret."""

    secret: str
    margin_s: int

    def mint(self, claims: AgentClaims, ready_deadline: datetime) -> str:
        """A credential that expires ``margin_s`` after the session's readiness deadline.

        Minted on every session POST, so with :func:`~services.api.hs256.encode_hs256` (a sixth of PyJWT's cost);
        :meth:`verify` checks it with PyJWT."""
        payload = {
            "sub": claims.session_id,
            "flow": claims.flow_id,
            "org": claims.org_id,
            "aud": AUDIENCE,
            "exp": int((ready_deadline + timedelta(seconds=self.margin_s)).timestamp()),
        }
        return encode_hs256(payload, self.secret.encode())

    def verify(self, token: str, session_id: str) -> AgentClaims:
        """The claims of ``token`` if it is valid for ``session_id``; CredentialError saying why not otherwise."""
        try:
            payload = jwt.decode(
                token, self.secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise CredentialError("the agent credential has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise CredentialError(f"invalid agent credential: {exc}") from exc
        if payload.get("sub") != session_id:
            raise CredentialError("the agent credential was issued for another session")
        return AgentClaims(session_id=session_id, flow_id=str(payload.get("flow")), org_id=str(payload.get("org")))
