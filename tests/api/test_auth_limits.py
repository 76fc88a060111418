"""Invalid API keys do not reach the database one by one: unknown keys are remembered briefly, and an address that
sends too many gets 429 with Retry-After; valid keys keep working."""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx
import pytest
from fastapi import FastAPI

from services.api.auth import ApiKey, Authenticator, AuthError, hash_key
from services.api.auth_limits import FailedAuthGuard, LookupBudgetSpentError, TooManyInvalidKeysError
from services.api.settings import ApiSettings
from services.runtime.ttl_cache import TtlCache
from tests.api.served import serve

VALID = "ar_" + "v" * 40


class Clock:
    """Time that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingKeys:
    """The key lookup port over a dict, counting what reaches it (each call is a database query in production)."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self.keys = {hash_key(k): v for k, v in keys.items()}
        self.lookups = 0

    async def key_for_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        await asyncio.sleep(0.001)  # a query's round trip: other requests run meanwhile
        return self.keys.get(key_hash)


def _auth(keys: CountingKeys, clock: Clock, limit: int = 5, miss_ttl_s: float = 10.0) -> Authenticator:
    cache: TtlCache[str, ApiKey] = TtlCache(10.0, clock=clock)
    return Authenticator(keys, cache, FailedAuthGuard(limit, 60, miss_ttl_s, clock=clock))


def _budgeted(keys: CountingKeys, clock: Clock, lookups_per_s: float) -> Authenticator:
    cache: TtlCache[str, ApiKey] = TtlCache(10.0, clock=clock)
    return Authenticator(keys, cache, FailedAuthGuard(30, 60, 10.0, clock=clock, lookups_per_s=lookups_per_s))


def _random_key() -> str:
    return "ar_" + uuid.uuid4().hex


async def test_an_address_sending_invalid_keys_is_limited_before_the_database() -> None:
    clock, keys = Clock(), CountingKeys({})
    auth = _auth(keys, clock)
    for _ in range(5):
        with pytest.raises(AuthError):
            await auth.key_for(_random_key(), "198.51.100.7")
    for _ in range(100):
        with pytest.raises(TooManyInvalidKeysError) as refused:
            await auth.key_for(_random_key(), "198.51.100.7")
    assert keys.lookups == 5, "past the limit no invalid key reached the database"
    assert 1 <= refused.value.retry_after_s <= 60
    assert "at most 5 per 60 s" in str(refused.value)
    with pytest.raises(AuthError):  # other addresses are counted apart
        await auth.key_for(_random_key(), "198.51.100.8")

    clock.now += 60  # the next window
    with pytest.raises(AuthError):
        await auth.key_for(_random_key(), "198.51.100.7")
    assert keys.lookups == 7


async def test_an_unknown_key_is_looked_up_once_per_miss_ttl_whoever_sends_it() -> None:
    clock, keys = Clock(), CountingKeys({})
    auth = _auth(keys, clock, limit=1000)
    revoked = _random_key()
    for i in range(50):
        with pytest.raises(AuthError):
            await auth.key_for(revoked, f"203.0.113.{i}")
    assert keys.lookups == 1
    clock.now += 10
    with pytest.raises(AuthError):
        await auth.key_for(revoked, "203.0.113.200")
    assert keys.lookups == 2, "remembered for miss_ttl_s only: a key created later is accepted after it"


async def test_a_malformed_key_costs_no_lookup_but_counts() -> None:
    clock, keys = Clock(), CountingKeys({})
    auth = _auth(keys, clock, limit=2)
    for credential in ("short", "ar_" + "é" * 20):
        with pytest.raises(AuthError, match="invalid API key"):
            await auth.key_for(credential, "192.0.2.1")
    with pytest.raises(TooManyInvalidKeysError):
        await auth.key_for(_random_key(), "192.0.2.1")
    assert keys.lookups == 0


async def test_concurrent_invalid_keys_from_one_address_cannot_all_pass_before_the_first_fails() -> None:
    clock, keys = Clock(), CountingKeys({})
    auth = _auth(keys, clock, limit=5)

    async def attempt() -> int:
        try:
            await auth.key_for(_random_key(), "198.51.100.99")
        except TooManyInvalidKeysError:
            return 429
        except AuthError:
            return 401
        return 200

    codes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert codes.count(401) == 5 and codes.count(429) == 45
    assert keys.lookups == 5


async def test_valid_keys_are_unaffected() -> None:
    clock, keys = Clock(), CountingKeys({VALID: ApiKey(key_id="k1", org_id="o1")})
    auth = _auth(keys, clock, limit=3)
    assert (await auth.key_for(VALID, "192.0.2.9")).org_id == "o1"  # cached from here on
    for _ in range(3):
        with pytest.raises(AuthError):
            await auth.key_for(_random_key(), "192.0.2.9")
    with pytest.raises(TooManyInvalidKeysError):
        await auth.key_for(_random_key(), "192.0.2.9")
    for _ in range(20):
        assert (await auth.key_for(VALID, "192.0.2.9")).org_id == "o1", "a known valid key passes a limited address"
    assert (await auth.key_for(VALID, "192.0.2.10")).org_id == "o1"


async def test_random_keys_from_many_addresses_share_one_lookup_budget() -> None:
    clock, keys = Clock(), CountingKeys({})
    auth = _budgeted(keys, clock, lookups_per_s=10)
    refusals: list[LookupBudgetSpentError] = []
    for i in range(100):  # each address sends one key: the per-address limit never triggers
        try:
            await auth.key_for(_random_key(), f"10.1.{i // 256}.{i % 256}")
        except LookupBudgetSpentError as exc:
            refusals.append(exc)
        except AuthError:
            pass
    assert keys.lookups == 10, "a second's budget of lookups, no more"
    assert len(refusals) == 90
    assert {r.retry_after_s for r in refusals} == {1}
    assert "at most 10 per second" in str(refusals[0])
    clock.now += 0.5  # the bucket refills at the budget's rate
    for i in range(10):
        with pytest.raises((AuthError, LookupBudgetSpentError)):
            await auth.key_for(_random_key(), f"10.2.0.{i}")
    assert keys.lookups == 15


async def test_a_key_seen_valid_is_rechecked_even_when_the_budget_is_spent() -> None:
    clock, keys = Clock(), CountingKeys({VALID: ApiKey(key_id="k1", org_id="o1")})
    auth = _budgeted(keys, clock, lookups_per_s=2)
    assert (await auth.key_for(VALID, "192.0.2.9")).org_id == "o1"
    with pytest.raises(AuthError):
        await auth.key_for(_random_key(), "192.0.2.50")
    with pytest.raises(LookupBudgetSpentError):
        await auth.key_for(_random_key(), "192.0.2.51")
    clock.now += 11  # the valid key's cache entry is due for a recheck, and the budget got refilled by a flood
    for i in range(2):
        with pytest.raises(AuthError):
            await auth.key_for(_random_key(), f"192.0.2.{60 + i}")
    lookups = keys.lookups
    assert (await auth.key_for(VALID, "192.0.2.9")).org_id == "o1"
    assert keys.lookups == lookups + 1, "rechecked in the database, outside the spent budget"


async def test_a_key_refused_for_the_budget_does_not_count_against_its_address() -> None:
    clock, keys = Clock(), CountingKeys({VALID: ApiKey(key_id="k1", org_id="o1")})
    cache: TtlCache[str, ApiKey] = TtlCache(10.0, clock=clock)
    auth = Authenticator(keys, cache, FailedAuthGuard(2, 60, 10.0, clock=clock, lookups_per_s=1))
    with pytest.raises(AuthError):
        await auth.key_for(_random_key(), "192.0.2.70")  # spends the budget
    for _ in range(5):
        with pytest.raises(LookupBudgetSpentError):
            await auth.key_for(VALID, "192.0.2.71")
    clock.now += 1
    assert (await auth.key_for(VALID, "192.0.2.71")).org_id == "o1", "not limited as an address of invalid keys"


def test_memory_stays_bounded_under_a_flood_of_addresses_and_keys() -> None:
    guard = FailedAuthGuard(5, 60, 10, max_entries=100, clock=Clock())
    for i in range(10_000):
        guard.admit(f"10.0.{i // 256}.{i % 256}")
        guard.remember_unknown(f"hash-{i}")
    assert guard.tracked() == (100, 100)


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


async def test_over_http_invalid_keys_get_429_with_retry_after_and_valid_keys_still_work(
    api_app: FastAPI, api_settings: ApiSettings, api_key: str
) -> None:
    async with serve(api_settings, auth_failures_per_window=30) as served:  # the default limit
        transport = httpx.ASGITransport(app=served.app, client=(_address(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            assert (await client.get("/api/flows", headers={"Authorization": f"Bearer {api_key}"})).status_code == 200
            for _ in range(30):
                response = await client.get("/api/flows", headers={"Authorization": f"Bearer {_random_key()}"})
                assert response.status_code == 401
            refused = await client.get("/api/flows", headers={"Authorization": f"Bearer {_random_key()}"})
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) >= 1
            assert "too many invalid API keys from this address (at most 30 per 60 s)" in refused.json()["error"]
            assert (await client.get("/api/flows", headers={"Authorization": f"Bearer {api_key}"})).status_code == 200


async def test_the_429_is_documented_on_every_route_a_key_opens(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    keyed = {
        (path, method): operation
        for path, item in paths.items()
        for method, operation in item.items()
        if operation.get("security") and "401" in operation["responses"]
    }
    assert ("/api/sessions/{session_id}/events", "get") in keyed
    assert [where for where, operation in keyed.items() if "429" not in operation["responses"]] == []
