"""Delivery end to end: status changes on real Redis Streams, the sender's consumer group and loop, real PostgreSQL,
a real HTTP receiver that verifies signatures the way the Standard Webhooks specification says."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.polling import wait_until
from tests.webhooks.conftest import new_org_client
from tests.webhooks.receiver import Receiver, spec_signature_valid
from tests.webhooks.sender_stack import publisher, running_sender, status_change


async def _register(client: httpx.AsyncClient, url: str, events: list[str] | None = None) -> dict[str, str]:
    body: dict[str, object] = {"url": url}
    if events is not None:
        body["events"] = events
    response = await client.post("/api/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _log(client: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, object]]:
    response = await client.get(f"/api/webhooks/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]  # type: ignore[no-any-return]


async def _wait_for_log(client: httpx.AsyncClient, endpoint_id: str, statuses: list[str], what: str) -> None:
    """Wait (10 s at most) until the endpoint's delivery log shows ``statuses``; the receiver answers before the
    sender records the answer."""

    async def logged() -> bool:
        return [d["status"] for d in await _log(client, endpoint_id)] == statuses

    await wait_until(logged, deadline_s=10, what=what)


async def test_a_receiver_that_fails_twice_gets_each_event_once_per_id_signed_per_the_spec(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        org_id = client.headers["x-test-org"]
        path = f"/flaky/2/{uuid.uuid4().hex}"
        endpoint = await _register(client, receiver.base_url + path, ["session.ready", "session.ended"])
        sid, failed_sid = uuid.uuid4().hex, uuid.uuid4().hex
        async with running_sender(hooks_redis_url, database_url), publisher(hooks_redis_url) as events:
            await events.publish(status_change(org_id, sid, "agent_joined", "ready"))
            await events.publish(status_change(org_id, sid, "agent_joined", "ready"))  # announced twice
            await events.publish(status_change(org_id, sid, "pending", "dispatched"))  # not a webhook event
            await events.publish(status_change(org_id, failed_sid, "pending", "failed"))  # not asked for
            await _wait_for_log(client, endpoint["id"], ["delivered"], "the delivery recorded as delivered")
            log = await _log(client, endpoint["id"])
        got = receiver.to(path)
        assert [r.answered for r in got] == [503, 503, 204]
        assert len({r.webhook_id for r in got}) == 1  # the same webhook-id on every retry
        assert len({r.body for r in got}) == 1  # the same signed body
        for request in got:
            assert spec_signature_valid(endpoint["secret"], request.headers, request.body)
            Webhook(endpoint["secret"]).verify(request.body, request.headers)  # the specification's own library
        message = json.loads(got[0].body)
        assert message["type"] == "session.ready"
        assert message["data"]["sessionId"] == sid
        assert message["data"]["status"] == "ready" and message["data"]["previousStatus"] == "agent_joined"
        assert message["data"]["stages"]["readyAt"] and message["data"]["stages"]["requestedAt"]
        assert message["data"]["readyAfterMs"] == pytest.approx(2000, abs=1)
        assert [(d["id"], d["status"], d["attempts"], d["lastStatusCode"]) for d in log] == [
            (got[0].webhook_id, "delivered", 3, 204)
        ]


async def test_during_a_secret_rotation_both_secrets_verify_and_afterwards_only_the_new_one(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        org_id = client.headers["x-test-org"]
        path = f"/ok/{uuid.uuid4().hex}"
        endpoint = await _register(client, receiver.base_url + path, ["session.ready"])
        rotated = (await client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={})).json()
        at_once = await client.post(
            f"/api/webhooks/{endpoint['id']}/rotate-secret", json={"previousSecretValidForS": 0}
        )
        assert at_once.status_code == 200, at_once.text
        async with running_sender(hooks_redis_url, database_url), publisher(hooks_redis_url) as events:
            await events.publish(status_change(org_id, uuid.uuid4().hex, "agent_joined", "ready"))
            await wait_until(lambda: len(receiver.to(path)) == 1, deadline_s=10, what="the first delivery")
            # The second rotation (no overlap) replaced the first one's secret at once: only its own secret signs.
            (first,) = receiver.to(path)
            assert spec_signature_valid(at_once.json()["secret"], first.headers, first.body)
            assert not spec_signature_valid(rotated["secret"], first.headers, first.body)
            assert not spec_signature_valid(endpoint["secret"], first.headers, first.body)
            assert len(first.headers["webhook-signature"].split(" ")) == 1

            overlap = (await client.post(f"/api/webhooks/{endpoint['id']}/rotate-secret", json={})).json()
            await events.publish(status_change(org_id, uuid.uuid4().hex, "agent_joined", "ready"))
            await wait_until(lambda: len(receiver.to(path)) == 2, deadline_s=10, what="the second delivery")
        second = receiver.to(path)[1]
        assert len(second.headers["webhook-signature"].split(" ")) == 2
        for secret in (overlap["secret"], at_once.json()["secret"]):  # a receiver on either secret accepts it
            assert spec_signature_valid(secret, second.headers, second.body)
            Webhook(secret).verify(second.body, second.headers)


async def test_a_retry_is_sent_when_due_without_the_poll(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    """The replica that scheduled a retry wakes for it: the poll (here an hour) only finds what others left due."""
    async with await new_org_client(hooks_api, database_url) as client:
        path = f"/flaky/2/{uuid.uuid4().hex}"
        endpoint = await _register(client, receiver.base_url + path, ["session.ready"])
        async with (
            running_sender(hooks_redis_url, database_url, webhook_poll_interval_s=3600.0),
            publisher(hooks_redis_url) as events,
        ):
            await events.publish(status_change(client.headers["x-test-org"], uuid.uuid4().hex, "agent_joined", "ready"))
            await _wait_for_log(client, endpoint["id"], ["delivered"], "the delivery retried and delivered")
        assert [r.answered for r in receiver.to(path)] == [503, 503, 204]


async def test_a_forged_signature_is_detected(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        path = f"/ok/{uuid.uuid4().hex}"
        endpoint = await _register(client, receiver.base_url + path)
        async with running_sender(hooks_redis_url, database_url), publisher(hooks_redis_url) as events:
            await events.publish(status_change(client.headers["x-test-org"], uuid.uuid4().hex, "ready", "ended"))
            await wait_until(lambda: receiver.to(path), deadline_s=10, what="a delivery")
    (genuine,) = receiver.to(path)
    assert spec_signature_valid(endpoint["secret"], genuine.headers, genuine.body)
    assert json.loads(genuine.body)["data"]["endCode"] == "user_left"
    tampered = genuine.body.replace(b'"ended"', b'"ready"')
    forged_headers = {**genuine.headers, "webhook-signature": "v1," + "A" * 44}
    assert not spec_signature_valid(endpoint["secret"], genuine.headers, tampered)
    assert not spec_signature_valid(endpoint["secret"], forged_headers, genuine.body)
    assert not spec_signature_valid("whsec_" + "B" * 44, genuine.headers, genuine.body)
    for body, headers in ((tampered, genuine.headers), (genuine.body, forged_headers)):
        with pytest.raises(WebhookVerificationError):
            Webhook(endpoint["secret"]).verify(body, headers)


async def test_a_dead_endpoint_ends_dead_after_the_bounded_attempts_and_replay_delivers_it(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        path = f"/down/{uuid.uuid4().hex}"
        endpoint = await _register(client, receiver.base_url + path)
        async with (
            running_sender(hooks_redis_url, database_url, webhook_max_attempts=3),
            publisher(hooks_redis_url) as events,
        ):
            await events.publish(status_change(client.headers["x-test-org"], uuid.uuid4().hex, "pending", "expired"))
            await _wait_for_log(client, endpoint["id"], ["dead"], "the delivery dead")
            (entry,) = await _log(client, endpoint["id"])
            assert (entry["attempts"], entry["lastStatusCode"]) == (3, 500)
            assert "500" in str(entry["lastError"])
            assert [r.answered for r in receiver.to(path)] == [500, 500, 500]

            receiver.heal()
            replayed = await client.post(f"/api/webhooks/{endpoint['id']}/replay")
            assert replayed.status_code == 202 and replayed.json() == {"replayed": 1}
            await _wait_for_log(client, endpoint["id"], ["delivered"], "the replayed delivery delivered")
            assert [r.answered for r in receiver.to(path)] == [500, 500, 500, 204]
            assert {r.webhook_id for r in receiver.to(path)} == {entry["id"]}  # a replay keeps the webhook-id

            again = await client.post(f"/api/webhooks/{endpoint['id']}/deliveries/{entry['id']}/replay")
            assert again.status_code == 202
            await wait_until(lambda: len(receiver.to(path)) == 5, deadline_s=10, what="the single replay")
            assert (await client.post(f"/api/webhooks/{endpoint['id']}/replay")).json() == {"replayed": 0}


async def test_a_slow_endpoint_does_not_delay_another_endpoints_delivery(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    async with await new_org_client(hooks_api, database_url) as client:
        org_id = client.headers["x-test-org"]
        slow, fast = f"/slow/{uuid.uuid4().hex}", f"/ok/{uuid.uuid4().hex}"
        await _register(client, receiver.base_url + slow, ["session.ready"])
        await _register(client, receiver.base_url + fast, ["session.ended"])
        limits = {"webhook_max_in_flight": 4, "webhook_max_in_flight_per_endpoint": 2, "webhook_timeout_s": 5.0}
        async with running_sender(hooks_redis_url, database_url, **limits), publisher(hooks_redis_url) as events:
            for _ in range(6):  # more than all the sender's slots, for the slow endpoint
                await events.publish(status_change(org_id, uuid.uuid4().hex, "agent_joined", "ready"))
            await wait_until(lambda: len(receiver.to(slow)) >= 2, deadline_s=10, what="the slow endpoint busy")
            published = time.monotonic()
            await events.publish(status_change(org_id, uuid.uuid4().hex, "ready", "ended"))
            took = await wait_until(lambda: receiver.to(fast), deadline_s=10, what="the fast endpoint's delivery")
            assert took < 2.0, f"the fast endpoint waited {took:.2f} s behind the slow one"
            assert receiver.to(fast)[0].at - published < 2.0
            assert len(receiver.to(slow)) == 2  # no more than its share of the slots, still hanging
