"""Flow initialisation through the API's internal endpoint, with the session's own credential.

Retries only what retrying can fix — 5xx answers and connection errors — with exponential backoff and jitter,
bounded in attempts and total time; a 4xx (refused credential, unknown session) fails at once. A 503 with
``Retry-After`` is the API shedding load during a burst, not failing: it is retried after the time it asks for
(jittered, so a burst's agents do not come back together) without counting as an attempt, within the time bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from services.agent.metadata import SessionMetadata
from services.runtime.retry_after import retry_after_seconds
from services.runtime.retrying import RetryPolicy, with_retries

log = structlog.get_logger(__name__)


class FlowInitError(Exception):
    """The API did not initialise the flow; the message says why (it becomes the agent.failed reason)."""


class _Retryable(Exception):
    """A failure worth another attempt (5xx or no connection)."""


class _Overloaded(_Retryable):
    """503 with Retry-After: the API is shedding load; come back after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


MAX_RETRY_AFTER_S = 5.0  # a Retry-After longer than this is not waited in full: the session's deadline is near


def _load_shedding_pause(error: BaseException) -> float | None:
    """The API's Retry-After (capped) when it shed load; None for a failure that counts as an attempt."""
    return min(error.retry_after_s, MAX_RETRY_AFTER_S) if isinstance(error, _Overloaded) else None


@dataclass(frozen=True)
class FlowConfig:
    """What the API answered: the greeting to speak and the flow's settings for the agent."""

    greeting: str
    definition: dict[str, Any] = field(default_factory=dict)
    agent_settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowInitPolicy:
    """Bounds of the flow-init retries."""

    attempts: int = 5
    max_seconds: float = 10.0
    initial_backoff_s: float = 0.1


class HttpFlowInitialiser:
    """Calls ``POST {api_url}/internal/sessions/{id}/flow-init`` with ``Authorization: Bearer <credential>``."""

    def __init__(self, client: aiohttp.ClientSession, api_url: str, policy: FlowInitPolicy) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._policy = policy

    async def __call__(self, session: SessionMetadata) -> FlowConfig:
        """Initialise the session's flow; raise FlowInitError when refused or when retries run out."""
        if not session.credential:
            raise FlowInitError("the dispatch metadata carries no agent credential for the API")
        policy = RetryPolicy(self._policy.attempts, self._policy.max_seconds, self._policy.initial_backoff_s)
        try:
            return await with_retries(policy, lambda: self._once(session), _Retryable, wait_out=_load_shedding_pause)
        except _Retryable as exc:
            raise FlowInitError(f"flow init failed after {policy.describe()}: {exc}") from exc

    async def _once(self, session: SessionMetadata) -> FlowConfig:
        url = f"{self._api_url}/internal/sessions/{session.session_id}/flow-init"
        try:
            async with self._client.post(url, headers={"Authorization": f"Bearer {session.credential}"}) as response:
                status, text = response.status, await response.text()
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            log.warning("flow_init_unreachable", error=type(exc).__name__)
            raise _Retryable(f"cannot reach the API at {self._api_url} ({type(exc).__name__})") from exc
        if status == 503 and retry_after is not None:
            log.info("flow_init_overloaded", retry_after_s=retry_after)
            raise _Overloaded(f"the API answered 503 (overloaded, Retry-After {retry_after:g} s)", retry_after)
        if status >= 500:
            log.warning("flow_init_server_error", status=status)
            raise _Retryable(f"the API answered {status}")
        if status >= 400:
            raise FlowInitError(f"the API refused flow init: {status} {_error_text(text)}")
        body = json.loads(text)
        return FlowConfig(
            greeting=str(body["greeting"]),
            definition=dict(body.get("definition") or {}),
            agent_settings=dict(body.get("agentSettings") or {}),
        )


def _error_text(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200]
    return str(body.get("error", text)) if isinstance(body, dict) else text[:200]
