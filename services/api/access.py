"""Who may call a route: the dependencies that turn a request's credential into its organisation.

A secret API key (with the route's scope), a publishable key (``pk_``: session creation only, checked by the route
with :class:`services.api.publishable_keys.PublishableGate`), or a session's client token (that session's GET,
DELETE and events only). Each reads ``app.state`` only (see :mod:`services.api.dependencies`): no database round
trip beyond the cached key lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.auth import ApiKey, Authenticator, AuthError, bearer_key
from services.api.client_tokens import ClientTokens, looks_like_jwt, only_own_session
from services.api.params import AccessToken, SessionId
from services.api.scopes import FLOWS, OPS, SESSIONS

# Declared for the OpenAPI document ("Authorize" in /docs); the header itself is parsed by the Authenticator,
# which explains what is wrong with it.
_bearer = HTTPBearer(
    auto_error=False,
    description="A secret API key (`Authorization: Bearer <key>`); a publishable key (`pk_`) only starts sessions; "
    "a session's clientToken reads, follows and ends that session",
)


async def _api_key(request: Request, credential: str) -> ApiKey:
    """The API key ``credential`` is; a client token here (a route it does not open) is refused with 403."""
    if looks_like_jwt(credential):
        tokens: ClientTokens = request.app.state.client_tokens
        tokens.verify(credential)  # 401 when it is no valid client token at all
        raise only_own_session()
    auth: Authenticator = request.app.state.auth  # read here, not as a dependency of its own: one less per request
    return await auth.key_for(credential, _address(request))


def _address(request: Request) -> str:
    """The client's address, as invalid keys are counted (the proxy's unless uvicorn trusts its forwarded headers)."""
    return request.client.host if request.client else "unknown"


async def get_api_key(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> ApiKey:
    """The caller's API key, secret or publishable (401 when missing or unknown)."""
    return await _api_key(request, bearer_key(request.headers.get("authorization")))


async def get_flows_org(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> str:
    """The organisation of a secret key with the ``flows`` scope."""
    return (await _api_key(request, bearer_key(request.headers.get("authorization")))).require(FLOWS)


async def get_ops_org(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> str:
    """The organisation of a secret key with the ``ops`` scope."""
    return (await _api_key(request, bearer_key(request.headers.get("authorization")))).require(OPS)


async def _session_org(request: Request, session_id: str, credential: str) -> str:
    """The organisation of a client token of ``session_id``, or of a secret key with the ``sessions`` scope."""
    if looks_like_jwt(credential):
        tokens: ClientTokens = request.app.state.client_tokens
        return tokens.org_for(credential, session_id)
    auth: Authenticator = request.app.state.auth
    return (await auth.key_for(credential, _address(request))).require(SESSIONS)


async def get_session_org(
    request: Request,
    session_id: SessionId,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """For routes of one session: its client token, or a secret key with the ``sessions`` scope."""
    return await _session_org(request, session_id, bearer_key(request.headers.get("authorization")))


async def get_stream_org(
    request: Request,
    session_id: SessionId,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    access_token: AccessToken = None,
) -> str:
    """As :func:`get_session_org`, the credential also accepted as ``?access_token=`` (EventSource sends no headers)."""
    authorization = request.headers.get("authorization")
    if authorization is None and access_token:
        if not looks_like_jwt(access_token):  # an API key in a URL ends up in logs and browser history
            raise AuthError(
                "?access_token= takes a session's clientToken only; send API keys in the Authorization header"
            )
        return await _session_org(request, session_id, access_token)
    return await _session_org(request, session_id, bearer_key(authorization))


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]
FlowsOrgDep = Annotated[str, Depends(get_flows_org)]
OpsOrgDep = Annotated[str, Depends(get_ops_org)]
SessionOrgDep = Annotated[str, Depends(get_session_org)]
StreamOrgDep = Annotated[str, Depends(get_stream_org)]
