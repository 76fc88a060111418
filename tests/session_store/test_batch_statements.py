"""A batch's transaction costs two round trips and four statements on PostgreSQL (BEGIN with the lock, then the update
with COMMIT), whatever it holds, and stays one transaction: what fails before COMMIT leaves nothing; its sightings of
the user follow the rule of the one-event upsert (services/session_store/repository.py), on a real PostgreSQL."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection, pq
from psycopg_pool import AsyncConnectionPool

from contracts.events import SessionDispatched, SessionRequested, SessionStatusChanged, UserPresenceChanged
from services.session_store.applying import handle_events
from services.session_store.lifecycle import Transition, change_for
from services.session_store.repository import PostgresSessionRepository
from tests.session_store.test_batches import RecordingAnnouncer


@pytest.fixture
async def traced(pool: AsyncConnectionPool, database_url: str) -> AsyncIterator[tuple[AsyncConnectionPool, Path]]:
    """A one-connection pool (schema made by ``pool``) whose connection writes libpq's protocol trace to a file."""
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.txt"
        with trace.open("w") as out:

            async def configure(conn: AsyncConnection[Any]) -> None:
                conn.pgconn.trace(out.fileno())
                conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

            async with AsyncConnectionPool(database_url, min_size=1, max_size=1, configure=configure) as one:
                yield one, trace


def _sent(trace: Path, message: str) -> int:
    """How many ``message`` (protocol message type) the client sent."""
    parts = (line.split() for line in trace.read_text().splitlines())
    return sum(1 for words in parts if len(words) > 2 and words[0] == "F" and words[2] == message)


def _syncs(trace: Path) -> int:
    """The Sync messages the client sent: each is a round trip in pipeline mode."""
    return _sent(trace, "Sync")


def _requested(sid: str) -> SessionRequested:
    return SessionRequested(
        session_id=sid, org_id="org-r", flow_id="flow-r", room_name=f"session-{sid}", greeting="Hi",
        ready_deadline=datetime.now(UTC) + timedelta(seconds=30),
    )  # fmt: skip


async def test_a_batch_with_moves_and_presences_takes_two_round_trips(
    traced: tuple[AsyncConnectionPool, Path],
) -> None:
    one, trace = traced
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    repo, announcer = PostgresSessionRepository(one), RecordingAnnouncer()
    await handle_events([_requested(a)], repo, announcer)  # the connection is checked out and warm
    before = _syncs(trace)
    events = [
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_r"),
        _requested(b),
        UserPresenceChanged(session_id=b, room_name=f"session-{b}", identity="u", present=True, source="agent"),
    ]
    transitions = await handle_events(events, repo, announcer)
    assert _syncs(trace) - before == 2  # BEGIN + the lock; the update, the presence and COMMIT
    assert [(t.from_status, t.to_status) if t else None for t in transitions] == [("pending", "dispatched"),
                                                                                 (None, "pending")]  # fmt: skip
    row_a, row_b = await repo.get(a), await repo.get(b)
    assert row_a is not None and row_a["status"] == "dispatched"
    assert row_b is not None and row_b["status"] == "pending" and row_b["user_joined_at"] is not None


async def test_a_batch_that_fails_after_its_lock_leaves_no_row_and_announces_nothing(pool: AsyncConnectionPool) -> None:
    sid = uuid.uuid4().hex
    repo, announcer = PostgresSessionRepository(pool), RecordingAnnouncer()

    def fails(_: list[Transition | None]) -> list[SessionStatusChanged]:
        raise RuntimeError("planned, then failed before the writes")

    change = SessionDispatched(session_id=sid, room_name=f"session-{sid}", dispatch_id="AD_f")
    with pytest.raises(RuntimeError, match="before the writes"):
        await repo.apply_batch([change_for(change)], (), fails, announcer.publish_all)
    assert await repo.get(sid) is None  # the row the lock made was rolled back with it
    assert announcer.batches == []
    (transition,) = await repo.apply_batch([change_for(change)], (), None, None)  # the connection is usable again
    assert transition is not None and transition.to_status == "dispatched"


def _seen(sid: str, present: bool, at: datetime, participant_sid: str = "") -> UserPresenceChanged:
    source = "livekit" if participant_sid else "agent"
    return UserPresenceChanged(session_id=sid, room_name=f"session-{sid}", identity="u", present=present,
                               source=source, participant_sid=participant_sid, occurred_at=at)  # fmt: skip


async def test_a_batchs_sightings_cost_no_statement_of_their_own(traced: tuple[AsyncConnectionPool, Path]) -> None:
    one, trace = traced
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    repo, announcer = PostgresSessionRepository(one), RecordingAnnouncer()
    await handle_events([_requested(a)], repo, announcer)
    before = _sent(trace, "Execute")
    now = datetime.now(UTC)
    events = [
        _seen(a, True, now, "PA_1"), _seen(b, True, now), _seen(a, False, now + timedelta(seconds=1), "PA_1"),
        SessionDispatched(session_id=a, room_name=f"session-{a}", dispatch_id="AD_s"), _seen(a, True, now, "PA_2"),
    ]  # fmt: skip
    await handle_events(events, repo, announcer)
    assert _sent(trace, "Execute") - before == 4  # BEGIN, the lock, the update, COMMIT
    row_a, row_b = await repo.get(a), await repo.get(b)
    assert row_a is not None and row_a["status"] == "dispatched"
    assert (row_a["user_joined_at"], row_a["user_sid"], row_a["user_left_at"], row_a["user_left_sid"]) == (
        now, "PA_2", now + timedelta(seconds=1), "PA_1")  # fmt: skip
    assert row_b is not None and row_b["status"] == "pending" and row_b["user_joined_at"] == now


_PRESENCE = ("user_joined_at", "user_sid", "user_left_at", "user_left_sid")


@pytest.mark.parametrize("batched", ["one_batch", "a_batch_each"])
async def test_a_batchs_sightings_end_as_the_one_event_upserts_would(pool: AsyncConnectionPool, batched: str) -> None:
    """Out of order, agent reports (no connection id) among LiveKit's, a rejoin, ties: the batch's rule (in Python,
    on the locked row) leaves the row as :meth:`record_presence` (SQL) one sighting after the other does."""
    repo, announcer = PostgresSessionRepository(pool), RecordingAnnouncer()
    t = datetime.now(UTC).replace(microsecond=123456)
    s = timedelta(seconds=1)
    story = [  # (present, seconds after t, connection id)
        (True, 5, ""), (True, 3, "PA_1"), (False, 9, "PA_1"), (True, 9, "PA_2"), (False, 7, ""),
        (True, 12, ""), (True, 12, "PA_3"), (False, 8, "PA_2"), (True, 11, "PA_4"), (False, 20, ""),
    ]  # fmt: skip
    expected, actual = uuid.uuid4().hex, uuid.uuid4().hex
    await handle_events([_requested(expected), _requested(actual)], repo, announcer)
    for present, after, sid in story:
        await repo.record_presence(expected, present, t + after * s, sid)
    sightings = [_seen(actual, present, t + after * s, sid) for present, after, sid in story]
    if batched == "one_batch":
        await handle_events(sightings, repo, announcer)
    else:
        for sighting in sightings:
            await handle_events([sighting], repo, announcer)
    want, got = await repo.get(expected), await repo.get(actual)
    assert want is not None and got is not None
    assert [got[c] for c in _PRESENCE] == [want[c] for c in _PRESENCE]
    assert [got[c] for c in _PRESENCE] == [t + 12 * s, "PA_3", t + 20 * s, "PA_1"]  # the story's end, spelled out
