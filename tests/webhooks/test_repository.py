"""Deliveries as PostgreSQL rows: made once per event and endpoint, leased while tried, due again if the sender died."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from services.api.webhook_store import WebhookStore
from services.webhooks.repository import DeliveryRepository, Outcome, Wanted
from tests.polling import wait_until


@pytest.fixture
async def org(hooks_pool: AsyncConnectionPool) -> AsyncIterator[str]:
    """A fresh organisation; its endpoints (and their deliveries) are removed afterwards, so no later test's sender
    meets them."""
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    yield org_id
    async with hooks_pool.connection() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE org_id = %s", (org_id,))


async def _endpoint(pool: AsyncConnectionPool, org_id: str, events: list[str] | None = None) -> str:
    endpoint, _secret = await WebhookStore(pool).create(
        org_id, "http://127.0.0.1:9/h", events or ["session.ready", "session.ended"], ""
    )
    return endpoint.id


async def _claim(repo: DeliveryRepository, endpoint_id: str, **kwargs: object) -> list[str]:
    """Claim what is due and return the ids of this test's endpoint (other tests' rows may be due too)."""
    options: dict[str, object] = {"per_endpoint": 10, "full": [], "max_attempts": 3, "lease_s": 60.0, **kwargs}
    attempts = await repo.claim_due(1000, **options)  # type: ignore[arg-type]
    return [a.delivery_id for a in attempts if a.endpoint_id == endpoint_id]


async def test_an_event_is_one_delivery_per_endpoint_that_wants_it(hooks_pool: AsyncConnectionPool, org: str) -> None:
    repo = DeliveryRepository(hooks_pool)
    wants, ignores = await _endpoint(hooks_pool, org), await _endpoint(hooks_pool, org, ["session.failed"])
    other_org = f"{org}-other"
    await _endpoint(hooks_pool, other_org)
    sid = uuid.uuid4().hex
    made = await repo.enqueue(org, sid, "session.ready", "{}")
    async with hooks_pool.connection() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE org_id = %s", (other_org,))
    assert len(made) == 1 and made[0].startswith("msg_")  # not for the other organisation's endpoint
    assert await repo.enqueue(org, sid, "session.ready", "{}") == []  # announced again: nothing new
    claimed = await repo.claim_due(1000, per_endpoint=10, full=[], max_attempts=3, lease_s=60)
    assert [a.delivery_id for a in claimed if a.endpoint_id in (wants, ignores)] == made
    assert [a.endpoint_id for a in claimed if a.delivery_id in made] == [wants]


async def test_a_delivery_whose_sender_died_is_due_again_after_its_lease_with_the_same_id(
    hooks_pool: AsyncConnectionPool, org: str
) -> None:
    repo = DeliveryRepository(hooks_pool)
    endpoint = await _endpoint(hooks_pool, org)
    (made,) = await repo.enqueue(org, uuid.uuid4().hex, "session.ended", "{}")
    assert await _claim(repo, endpoint, lease_s=0.3) == [made]
    assert await _claim(repo, endpoint, lease_s=0.3) == []  # leased: nobody else sends it meanwhile
    await wait_until(lambda: _claim(repo, endpoint, lease_s=0.3), deadline_s=5, what="the lease to run out")
    # the third claim was the last allowed attempt (max 3); its sender "dies" too: dead, not tried a fourth time
    await wait_until(lambda: _claim(repo, endpoint, lease_s=0.3), deadline_s=5, what="the lease to run out")
    async with hooks_pool.connection() as conn:
        await conn.execute("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = %s", (made,))
    assert await _claim(repo, endpoint) == []
    async with hooks_pool.connection() as conn:
        cur = await conn.execute("SELECT status, attempts, last_error FROM webhook_deliveries WHERE id = %s", (made,))
        status, attempts, error = await cur.fetchone()  # type: ignore[misc]
    assert (status, attempts) == ("dead", 3) and "stopped during the last attempt" in error


async def test_at_most_per_endpoint_deliveries_of_one_endpoint_are_claimed_and_full_ones_none(
    hooks_pool: AsyncConnectionPool, org: str
) -> None:
    repo = DeliveryRepository(hooks_pool)
    busy, quiet = (
        await _endpoint(hooks_pool, org, ["session.ready"]),
        await _endpoint(hooks_pool, org, ["session.ended"]),
    )
    for _ in range(5):
        await repo.enqueue(org, uuid.uuid4().hex, "session.ready", "{}")
    await repo.enqueue(org, uuid.uuid4().hex, "session.ended", "{}")
    first = await repo.claim_due(1000, per_endpoint=2, full=[quiet], max_attempts=3, lease_s=60)
    assert [a.endpoint_id for a in first if a.endpoint_id in (busy, quiet)] == [busy, busy]
    second = await repo.claim_due(1000, per_endpoint=2, full=[busy], max_attempts=3, lease_s=60)
    assert [a.endpoint_id for a in second if a.endpoint_id in (busy, quiet)] == [quiet]


async def test_a_result_after_a_replay_reset_the_delivery_is_not_recorded(
    hooks_pool: AsyncConnectionPool, org: str
) -> None:
    repo = DeliveryRepository(hooks_pool)
    endpoint = await _endpoint(hooks_pool, org)
    await repo.enqueue(org, uuid.uuid4().hex, "session.ready", "{}")
    (attempt,) = [
        a
        for a in await repo.claim_due(1000, per_endpoint=10, full=[], max_attempts=3, lease_s=60)
        if a.endpoint_id == endpoint
    ]
    assert await WebhookStore(hooks_pool).replay_one(org, endpoint, attempt.delivery_id)
    await repo.finish(attempt, Outcome(ok=False, status_code=500, error="late"), retry_in_s=None)
    async with hooks_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT status, attempts FROM webhook_deliveries WHERE id = %s", (attempt.delivery_id,)
        )
        assert await cur.fetchone() == ("pending", 0)


async def test_a_batch_of_changes_is_one_delivery_per_change_and_endpoint_that_wants_it(
    hooks_pool: AsyncConnectionPool, org: str
) -> None:
    repo = DeliveryRepository(hooks_pool)
    ready_and_ended, ended_only = await _endpoint(hooks_pool, org), await _endpoint(hooks_pool, org, ["session.ended"])
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    batch = [
        Wanted(org, a, "session.ready", '{"n": 1}'),
        Wanted(org, a, "session.ready", '{"n": 1}'),  # announced twice in one batch: still one delivery
        Wanted(org, b, "session.ended", '{"n": 2}'),
        Wanted(f"{org}-nobody", a, "session.ready", "{}"),  # an organisation without endpoints
    ]
    made = await repo.enqueue_many(batch)
    assert sorted(made) == sorted([(a, "session.ready"), (b, "session.ended"), (b, "session.ended")])
    assert await repo.enqueue_many(batch) == []  # the batch again (a redelivery): nothing new
    claimed = await repo.claim_due(1000, per_endpoint=10, full=[], max_attempts=3, lease_s=60)
    mine = sorted((c.endpoint_id, c.payload) for c in claimed if c.endpoint_id in (ready_and_ended, ended_only))
    assert mine == sorted([(ready_and_ended, '{"n": 1}'), (ready_and_ended, '{"n": 2}'), (ended_only, '{"n": 2}')])


async def test_deliveries_in_flight_count_toward_an_endpoints_share(hooks_pool: AsyncConnectionPool, org: str) -> None:
    repo = DeliveryRepository(hooks_pool)
    endpoint = await _endpoint(hooks_pool, org, ["session.ready"])
    await repo.enqueue_many([Wanted(org, uuid.uuid4().hex, "session.ready", "{}") for _ in range(5)])
    # one of its deliveries is being sent already: of a share of 2, one more may go
    assert len(await _claim(repo, endpoint, per_endpoint=2, busy={endpoint: 1})) == 1
    assert await _claim(repo, endpoint, per_endpoint=2, busy={endpoint: 2}) == []
