"""Flow init against a real HTTP server: retried on 5xx and connection errors (bounded), never on 4xx."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from services.agent.flow_client import FlowInitError, FlowInitPolicy, HttpFlowInitialiser
from services.agent.metadata import SessionMetadata

FAST = FlowInitPolicy(attempts=5, max_seconds=5, initial_backoff_s=0.01)


@dataclass
class ScriptedApi:
    """A real HTTP server answering flow-init with scripted statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    url: str = ""
    retry_after: str | None = None  # sent with each scripted 503, as the API's load shedding does

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(request.headers.get("Authorization", ""))
        if self.statuses:
            status = self.statuses.pop(0)
            headers = {"Retry-After": self.retry_after} if status == 503 and self.retry_after is not None else None
            return web.json_response({"error": f"scripted {status}"}, status=status, headers=headers)
        return web.json_response(
            {
                "sessionId": request.match_info["sid"],
                "flowId": "f",
                "greeting": "From the flow",
                "definition": {"steps": 1},
                "agentSettings": {"tts": "offline"},
            }
        )


@pytest.fixture
async def api() -> AsyncIterator[ScriptedApi]:
    scripted = ScriptedApi()
    app = web.Application()
    app.router.add_post("/internal/sessions/{sid}/flow-init", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    scripted.url = f"http://{host}:{port}"
    yield scripted
    await runner.cleanup()


def _session(credential: str = "cred-123") -> SessionMetadata:
    return SessionMetadata.model_validate(
        {"sessionId": "s1", "flowId": "f", "orgId": "o", "roomName": "r", "greeting": "meta", "credential": credential}
    )


async def _init(url: str, session: SessionMetadata, policy: FlowInitPolicy = FAST):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        return await HttpFlowInitialiser(client, url, policy)(session)


async def test_503_a_few_times_then_success(api: ScriptedApi) -> None:
    api.statuses = [503, 503, 502]
    flow = await _init(api.url, _session())
    assert flow.greeting == "From the flow"
    assert flow.agent_settings == {"tts": "offline"}
    assert api.calls == ["Bearer cred-123"] * 4


async def test_403_fails_at_once(api: ScriptedApi) -> None:
    api.statuses = [403]
    with pytest.raises(FlowInitError, match="refused flow init: 403 scripted 403"):
        await _init(api.url, _session())
    assert len(api.calls) == 1


async def test_5xx_retries_are_bounded(api: ScriptedApi) -> None:
    api.statuses = [500] * 20
    with pytest.raises(FlowInitError, match="after 5 attempts"):
        await _init(api.url, _session())
    assert len(api.calls) == FAST.attempts


async def test_unreachable_api_is_retried_then_fails() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    policy = FlowInitPolicy(attempts=3, max_seconds=5, initial_backoff_s=0.01)
    with pytest.raises(FlowInitError, match="cannot reach the API"):
        await _init(f"http://127.0.0.1:{port}", _session(), policy)


async def test_missing_credential_fails_without_calling(api: ScriptedApi) -> None:
    with pytest.raises(FlowInitError, match="no agent credential"):
        await _init(api.url, _session(credential=""))
    assert api.calls == []


async def test_the_apis_load_shedding_is_waited_out_without_using_up_the_attempts(api: ScriptedApi) -> None:
    api.statuses, api.retry_after = [503] * 12 + [500, 500], "0"
    flow = await _init(api.url, _session())
    assert flow.greeting == "From the flow"
    assert len(api.calls) == 15, "12 overloaded answers did not count: only the two 500s were attempts"


async def test_load_shedding_is_waited_out_only_within_the_time_bound(api: ScriptedApi) -> None:
    api.statuses, api.retry_after = [503] * 100, "1"
    policy = FlowInitPolicy(attempts=5, max_seconds=0.3, initial_backoff_s=0.01)
    with pytest.raises(FlowInitError, match=r"overloaded, Retry-After 1 s"):
        await _init(api.url, _session(), policy)
    assert 1 <= len(api.calls) <= 2
