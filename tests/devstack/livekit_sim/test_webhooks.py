"""The simulator sends livekit-server's webhooks: signed JSON the SDK's WebhookReceiver accepts, in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from livekit import api
from livekit.protocol.webhook import WebhookEvent

from devstack.livekit_sim import SimulatorConfig, run_simulator
from tests.agent.bus_client import join_bus, participant_token
from tests.polling import wait_until


class Receiver:
    """An HTTP endpoint that verifies every webhook exactly as the SDKs do and keeps what it got."""

    def __init__(self, secret: str = "secret") -> None:
        self.verifier = api.WebhookReceiver(api.TokenVerifier("devkey", secret))
        self.events: list[WebhookEvent] = []
        self.refused = 0
        self.content_types: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.content_types.add(request.content_type)
        try:
            self.events.append(self.verifier.receive(body, request.headers.get("Authorization", "")))
        except Exception:
            self.refused += 1
            return web.Response(status=401)
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield got, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_rooms_and_participants_send_signed_webhooks_in_order(receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    name = f"room-{uuid.uuid4().hex}"
    config = SimulatorConfig(webhook_urls=[url], reap_interval=0.1)
    async with run_simulator(config=config) as sim:
        async with join_bus(sim.url, participant_token(name, "user-1")):
            await wait_until(lambda: len(got.events) >= 2, deadline_s=5.0, what="webhooks received")
        async with join_bus(sim.url, participant_token(name, "user-2")):
            await wait_until(lambda: len(got.events) >= 4, deadline_s=5.0, what="webhooks received")
            async with api.LiveKitAPI(sim.url, "devkey", "secret") as lk:
                await lk.room.delete_room(api.DeleteRoomRequest(room=name))
            await wait_until(lambda: len(got.events) >= 6, deadline_s=5.0, what="webhooks received")
    assert got.refused == 0 and got.content_types == {"application/webhook+json"}
    seen = [(e.event, e.participant.identity) for e in got.events]
    assert seen == [
        ("room_started", ""),
        ("participant_joined", "user-1"),
        ("participant_left", "user-1"),
        ("participant_joined", "user-2"),
        ("participant_left", "user-2"),  # still there when the room closed
        ("room_finished", ""),
    ]
    assert all(e.room.name == name and e.id and e.created_at > 0 for e in got.events)
    assert got.events[1].participant.sid == got.events[2].participant.sid


async def test_a_receiver_with_another_secret_refuses_them() -> None:
    got = Receiver(secret="another-secret")
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with run_simulator(config=SimulatorConfig(webhook_urls=[url])) as sim:
            async with join_bus(sim.url, participant_token(f"room-{uuid.uuid4().hex}", "user-1")):
                await wait_until(lambda: got.refused >= 2, deadline_s=5.0, what="webhooks received")
            assert sim.webhooks.failed == 0 and not got.events  # a 401 is an answer, not a retry
    finally:
        await runner.cleanup()
