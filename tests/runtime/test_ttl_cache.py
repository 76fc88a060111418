"""The lookup cache of the hot path: fresh reuse, expiry, and expired values only while the database is unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import psycopg
import psycopg_pool
import pytest
from structlog.testing import capture_logs

from services.api.auth import ApiKey, Authenticator, AuthError, hash_key
from services.runtime.delivery import is_transient
from services.runtime.ttl_cache import TtlCache

TTL = 2.0
STALE = 60.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lookup:
    """A lookup callable whose answer the test sets: a value, None (not found) or an error to raise."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.error: Exception | None = None
        self.calls = 0
        self.finished = 0

    def __call__(self) -> Awaitable[str | None]:
        self.calls += 1
        return self._answer()

    async def _answer(self) -> str | None:
        try:
            if self.error is not None:
                raise self.error
            return self.answer
        finally:
            self.finished += 1


async def retried(lookup: Lookup, calls: int) -> None:
    """Wait (bounded) until ``lookup`` has answered ``calls`` times: the background retry has then stored its result
    (it does so in the same step as the lookup returns)."""
    for _ in range(100):
        if lookup.finished >= calls:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the lookup answered {lookup.finished} times, not {calls}")


def new_cache(clock: Clock, stale_s: float = STALE) -> TtlCache[str, str]:
    return TtlCache(TTL, stale_s=stale_s, is_outage=is_transient, name="test", clock=clock)


def db_down() -> Exception:
    return psycopg.OperationalError("connection failed: Connection refused")


async def test_a_fresh_value_is_reused_and_an_expired_one_looked_up_again() -> None:
    clock, lookup = Clock(), Lookup("v1")
    cache = new_cache(clock)
    assert await cache.get("k", lookup) == "v1"
    lookup.answer = "v2"
    clock.now += TTL - 0.1
    assert await cache.get("k", lookup) == "v1" and lookup.calls == 1
    clock.now += 0.2
    assert await cache.get("k", lookup) == "v2" and lookup.calls == 2


@pytest.mark.parametrize(
    "outage", [db_down(), psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"), TimeoutError()]
)
async def test_an_expired_value_is_used_while_the_database_is_unreachable(outage: Exception) -> None:
    clock, lookup = Clock(), Lookup("org-1")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    lookup.error = outage
    clock.now += TTL + 1
    with capture_logs() as logs:
        assert await cache.get("k", lookup) == "org-1"  # this request waited for the failing lookup
        assert await cache.get("k", lookup) == "org-1"  # the next ones do not try again within a TTL
        assert lookup.calls == 2
        clock.now += TTL
        assert await cache.get("k", lookup) == "org-1"  # answered at once; one retry runs in the background
        await retried(lookup, 3)
        assert lookup.calls == 3
    warnings = [e for e in logs if e["event"] == "cache_serving_stale"]
    assert len(warnings) == 1, logs  # once per key and outage, not per request
    assert warnings[0]["log_level"] == "warning" and warnings[0]["cache"] == "test" and warnings[0]["key"] == "k"


async def test_the_stale_value_has_a_limit() -> None:
    clock, lookup = Clock(), Lookup("v")
    cache = new_cache(clock, stale_s=10)
    await cache.get("k", lookup)
    lookup.error = db_down()
    clock.now += TTL + 9.9
    assert await cache.get("k", lookup) == "v"
    clock.now += TTL  # past expiry + stale_s
    with pytest.raises(psycopg.OperationalError):
        await cache.get("k", lookup)


async def test_not_found_from_a_working_database_is_never_masked() -> None:
    clock, lookup = Clock(), Lookup("org-1")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    lookup.answer = None  # revoked / deleted
    clock.now += TTL + 0.1
    assert await cache.get("k", lookup) is None
    lookup.error = db_down()  # and then the database goes away: the revoked value must not come back
    with pytest.raises(psycopg.OperationalError):
        await cache.get("k", lookup)


async def test_other_errors_and_unknown_keys_are_not_masked() -> None:
    clock, lookup = Clock(), Lookup("v")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    clock.now += TTL + 0.1
    lookup.error = psycopg.errors.UndefinedTable("relation does not exist")  # the database answered: a bug
    with pytest.raises(psycopg.errors.UndefinedTable):
        await cache.get("k", lookup)
    lookup.error = db_down()
    with pytest.raises(psycopg.OperationalError):
        await cache.get("never-cached", lookup)


async def test_no_stale_use_when_disabled_and_no_caching_at_ttl_zero() -> None:
    clock, lookup = Clock(), Lookup("v")
    cache = new_cache(clock, stale_s=0)
    await cache.get("k", lookup)
    clock.now += TTL
    lookup.error = db_down()
    with pytest.raises(psycopg.OperationalError):
        await cache.get("k", lookup)
    uncached: TtlCache[str, str] = TtlCache(0, stale_s=STALE, is_outage=is_transient, clock=clock)
    lookup.error = None
    await uncached.get("k", lookup)
    await uncached.get("k", lookup)
    assert lookup.calls == 4


async def test_after_recovery_a_new_outage_warns_again_and_the_fresh_value_wins() -> None:
    clock, lookup = Clock(), Lookup("v1")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    with capture_logs() as logs:
        for before, answer, retry in (("v1", "v2", 3), ("v2", "v3", 5)):
            lookup.error = db_down()
            clock.now += TTL
            assert await cache.get("k", lookup) == before
            lookup.error, lookup.answer = None, answer  # the database is back
            clock.now += TTL
            assert await cache.get("k", lookup) == before  # this one is answered at once; the retry runs
            await retried(lookup, retry)
            assert await cache.get("k", lookup) == answer
    assert [e["event"] for e in logs] == ["cache_serving_stale", "cache_lookup_recovered"] * 2


async def test_a_flow_deleted_during_the_outage_is_gone_once_the_database_answers() -> None:
    clock, lookup = Clock(), Lookup("v")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    lookup.error = db_down()
    clock.now += TTL
    assert await cache.get("k", lookup) == "v"
    lookup.error, lookup.answer = None, None
    clock.now += TTL
    await cache.get("k", lookup)
    await retried(lookup, 3)
    assert await cache.get("k", lookup) is None


async def test_while_the_database_hangs_requests_do_not_wait_for_it() -> None:
    clock = Clock()
    cache = new_cache(clock)
    await cache.get("k", Lookup("v"))
    failing = Lookup("v")
    failing.error = db_down()
    clock.now += TTL
    await cache.get("k", failing)  # the outage is known now
    release = asyncio.Event()
    hanging = Lookup("v")
    hanging.error = db_down()

    async def hangs() -> str | None:  # the database does not answer until the pool gives up
        await release.wait()
        return await hanging()

    for _ in range(3):
        clock.now += TTL
        assert await asyncio.wait_for(cache.get("k", hangs), timeout=1) == "v"
        await asyncio.sleep(0)  # let a retry start, if one was started
    release.set()
    await retried(hanging, 1)
    assert hanging.calls == 1  # one retry at a time, however many requests came
    clock.now += TTL
    recovered = Lookup("v2")
    assert await cache.get("k", recovered) == "v"
    await retried(recovered, 1)
    assert await cache.get("k", recovered) == "v2"


async def test_the_oldest_entry_goes_first_when_full() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(TTL, max_entries=2, clock=clock)
    for key in ("a", "b", "c"):
        await cache.get(key, Lookup(key))
    lookup = Lookup("new")
    assert await cache.get("c", lookup) == "c" and await cache.get("a", lookup) == "new"


async def test_a_revoked_key_stops_working_within_the_ttl() -> None:
    clock = Clock()
    org_of: dict[str, str | None] = {hash_key("ar_0123456789abcdef"): "org-1"}

    class Keys:
        async def key_for_hash(self, key_hash: str) -> ApiKey | None:
            org_id = org_of.get(key_hash)
            return ApiKey(key_id="k1", org_id=org_id) if org_id else None

    auth = Authenticator(Keys(), new_cache(clock))
    header = "Bearer ar_0123456789abcdef"
    assert await auth.org_for(header) == "org-1"
    org_of.clear()
    assert await auth.org_for(header) == "org-1"  # within the TTL
    clock.now += TTL
    with pytest.raises(AuthError, match="invalid API key"):
        await auth.org_for(header)


async def test_a_background_retry_that_gets_a_real_error_drops_the_stale_value() -> None:
    clock, lookup = Clock(), Lookup("v")
    cache = new_cache(clock)
    await cache.get("k", lookup)
    lookup.error = db_down()
    clock.now += TTL
    await cache.get("k", lookup)
    lookup.error = psycopg.errors.UndefinedTable("relation does not exist")  # back, but answering with an error
    clock.now += TTL
    with capture_logs() as logs:
        assert await cache.get("k", lookup) == "v"
        await retried(lookup, 3)
    assert [e["event"] for e in logs] == ["cache_refresh_failed"]
    with pytest.raises(psycopg.errors.UndefinedTable):
        await cache.get("k", lookup)


async def test_concurrent_requests_for_one_key_share_one_lookup() -> None:
    """A burst on an expired or unknown key costs one database lookup, not one per request."""
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(1.0, clock=clock)
    calls = 0
    release = asyncio.Event()

    async def slow_lookup() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return f"v{calls}"

    first = [asyncio.create_task(cache.get("k", slow_lookup)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*first) == ["v1"] * 20 and calls == 1
    clock.now += 2.0  # expired: the first request looks it up again, the others get the value it replaces
    release.clear()
    again = [asyncio.create_task(cache.get("k", slow_lookup)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert sorted(await asyncio.gather(*again)) == ["v1"] * 19 + ["v2"] and calls == 2
