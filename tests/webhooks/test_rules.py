"""Plain rules of the webhook sender and the API's URL check: retries, payloads, signatures, addresses."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from services.api.webhook_store import new_secret
from services.api.webhook_urls import WebhookUrlError, checked_webhook_url
from services.runtime.sealed_secrets import SecretSeal
from services.webhooks.payloads import webhook_event_type
from services.webhooks.repository import Attempt
from services.webhooks.retries import RetryPolicy
from services.webhooks.sender import is_public, new_session, send
from services.webhooks.signing import signed_headers
from tests.webhooks.receiver import Receiver, spec_signature_valid
from tests.webhooks.sender_stack import status_change


def test_retries_back_off_exponentially_within_bounds_and_stop() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=5, factor=4, max_s=100, jitter=0)
    assert [policy.delay_after(n) for n in range(1, 6)] == [5, 20, 80, 100, None]
    jittered = RetryPolicy(max_attempts=5, base_s=10, factor=2, jitter=0.2)
    delays = [jittered.delay_after(1, random.Random(seed)) for seed in range(50)]
    assert all(d is not None and 8 <= d <= 12 for d in delays)
    assert len(set(delays)) > 1  # retries of many deliveries do not bunch


def test_only_ready_and_terminal_changes_are_webhook_events() -> None:
    org, sid = "o", uuid.uuid4().hex
    found = {to: webhook_event_type(status_change(org, sid, None, to)) for to in ("dispatched", "ready", "ended")}
    assert found == {"dispatched": None, "ready": "session.ready", "ended": "session.ended"}
    assert webhook_event_type(status_change(org, sid, None, "failed")) == "session.failed"
    assert webhook_event_type(status_change(org, sid, None, "expired")) == "session.expired"


def test_signatures_are_the_specifications() -> None:
    secret = new_secret()
    body = '{"type":"session.ready"}'
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert spec_signature_valid(secret, headers, body.encode())
    Webhook(secret).verify(body, headers)
    assert not spec_signature_valid(new_secret(), headers, body.encode())


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("169.254.169.254", False), ("::1", False),
     ("::ffff:127.0.0.1", False), ("fd00::1", False), ("2606:4700:4700::1111", True), ("0.0.0.0", False)],
)  # fmt: skip
def test_only_global_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/x", "https://127.0.0.1/x", "https://10.0.0.8/x", "https://[::1]:8443/x",
     "https://169.254.169.254/latest/meta-data", "https://localhost/x", "https://api.internal/x",
     "https://metadata.localhost/x"],
)  # fmt: skip
async def test_outside_dev_mode_only_https_to_public_hosts_registers(url: str) -> None:
    with pytest.raises(WebhookUrlError) as refused:
        await checked_webhook_url(url, dev_mode=False)
    assert "https" in str(refused.value) or "public" in str(refused.value) or "local" in str(refused.value)


async def test_dev_mode_registers_loopback_http_and_public_https_always_registers() -> None:
    assert await checked_webhook_url("http://127.0.0.1:9000/h", dev_mode=True) == "http://127.0.0.1:9000/h"
    assert await checked_webhook_url("https://93.184.215.14/h", dev_mode=False) == "https://93.184.215.14/h"


async def test_the_sender_refuses_private_addresses_outside_dev_mode(receiver: Receiver) -> None:
    """A listening loopback receiver, by address and by name: reached only when private addresses are allowed."""
    port = receiver.base_url.rsplit(":", 1)[1]
    urls = [f"http://127.0.0.1:{port}/ok/literal", f"http://localhost:{port}/ok/by-name"]
    async with new_session(allow_private=False, max_connections=2) as strict:
        refused = [
            await send(
                strict,
                Attempt("msg_x", "we_x", url, new_secret(), "{}", 1),
                timeout_s=2,
                allow_private=False,
                seal=SecretSeal(),
            )
            for url in urls
        ]
    assert [o.ok for o in refused] == [False, False]
    assert "not a public address" in str(refused[0].error)
    assert "no public address" in str(refused[1].error)
    assert receiver.received == []
    async with new_session(allow_private=True, max_connections=2) as dev:
        allowed = await send(
            dev,
            Attempt("msg_y", "we_x", urls[1], new_secret(), "{}", 1),
            timeout_s=2,
            allow_private=True,
            seal=SecretSeal(),
        )
    assert allowed.ok and [r.path for r in receiver.received] == ["/ok/by-name"]
