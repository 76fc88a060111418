"""Open SSE streams: a per-organisation cap (429 beyond it), and every stream's state goes away with its client,
also when the client vanishes without closing (a TCP reset), served by uvicorn as in production."""

from __future__ import annotations

import asyncio
import gc

from fastapi import FastAPI

from services.api.fanout import Listener
from services.api.settings import ApiSettings
from tests.api.served import RawStream, new_org_key, new_sessions, open_events, serve
from tests.polling import wait_until

QUIET = {"sse_recheck_s": 60.0, "sse_heartbeat_s": 60.0}  # an idle stream sends nothing during the test


async def test_streams_over_the_org_cap_get_429_until_one_ends(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    async with serve(api_settings, max_sse_streams_per_org=3, **QUIET) as served:
        key, other_key = await new_org_key(database_url), await new_org_key(database_url)
        session_ids = await new_sessions(served.app, key, 2)
        streams = [await open_events(served.port, session_ids[i % 2], key) for i in range(3)]
        assert [s.status for s in streams] == [200, 200, 200]
        slots = served.app.state.stream_slots

        refused = await open_events(served.port, session_ids[0], key)
        assert refused.status == 429
        assert "retry-after: 5" in refused.head.lower()
        body = (await refused.reader.read(2000)).decode()
        assert "at most 3" in body and "MAX_SSE_STREAMS_PER_ORG" in body
        await refused.close()

        missing = await open_events(served.port, "no-such-session", other_key)
        assert missing.status == 404
        await missing.close()
        (other_session,) = await new_sessions(served.app, other_key, 1)
        other = await open_events(served.port, other_session, other_key)
        assert other.status == 200, "another organisation's streams are counted apart"
        other_org = (await served.app.state.admission.snapshot(other_session)).org_id
        assert slots.open_streams(other_org) == 1, "a 404 gave its slot back"

        org_id = (await served.app.state.admission.snapshot(session_ids[0])).org_id
        assert slots.open_streams(org_id) == 3
        streams[0].vanish()  # no FIN: the server learns it from the reset
        await wait_until(lambda: slots.open_streams(org_id) == 2, deadline_s=5, what="the vanished client's slot")
        replacement = await open_events(served.port, session_ids[0], key)
        assert replacement.status == 200

        for stream in [*streams[1:], replacement, other]:
            await stream.close()
        await wait_until(lambda: slots.organisations() == 0, deadline_s=5, what="every slot back")


async def test_a_thousand_streams_leave_nothing_behind(
    api_app: FastAPI, api_settings: ApiSettings, database_url: str
) -> None:
    """1,000 clients follow 20 sessions, then half close and half vanish: every per-stream registry is empty again.

    (The RSS of a separate API process before and after is in the issue-20 report; no memory threshold here.)"""
    async with serve(api_settings, max_sse_streams_per_org=1000, **QUIET) as served:
        key = await new_org_key(database_url)
        session_ids = await new_sessions(served.app, key, 20)
        gate = asyncio.Semaphore(100)

        async def one(i: int) -> RawStream:
            async with gate:
                return await open_events(served.port, session_ids[i % 20], key, timeout_s=15)

        streams = await asyncio.gather(*(one(i) for i in range(1000)))
        assert {s.status for s in streams} == {200}
        fanout, slots = served.app.state.fanout, served.app.state.stream_slots
        assert sum(fanout.listener_count(sid) for sid in session_ids) == 1000
        assert slots.organisations() == 1

        for i, stream in enumerate(streams):
            if i % 2:
                stream.vanish()
            else:
                stream.writer.close()

        def gone() -> bool:
            return fanout.listening_sessions() == 0 and slots.organisations() == 0

        await wait_until(gone, deadline_s=10, what="every listener and slot went away with its client")
        await wait_until(lambda: not served.server.server_state.connections, deadline_s=5, what="connections closed")
        # A finished task leaves uvicorn's set through a done callback, one loop turn after it ends.
        await wait_until(
            lambda: not served.server.server_state.tasks, deadline_s=5, what="no request task outlives its client"
        )
        assert not any(isinstance(o, Listener) for o in gc.get_objects()), "nothing else holds a stream's queue"
