"""``python -m bench.real_frontends``: the real-LiveKit phase's frontends, in a process of their own.

Each one requests a session (POST), joins its room with the real SDK (livekit.rtc, over WebRTC), subscribes to the
agent's audio as a browser frontend does (so the agent speaks its greeting: AGENT_WAIT_FOR_USER=true), waits for
``agent.ready`` on the data channel, then leaves. Sessions start at a fixed rate (open loop). A process of its own:
the SDK's CPU stays out of the stack's measurement, and its native runtime's exit (devstack.rtc_exit) out of the
benchmark's process. Prints one JSON object: every session's outcome and client-side times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import httpx

from contracts.datachannel import AGENT_STATUS_TOPIC
from devstack.demo.room_rtc import RtcRoom
from devstack.demo.rooms import JoinError, RoomClosedError, room_not_created_yet
from devstack.rtc_exit import exit_now_if_rtc_ran

JOIN_RETRY_FIRST_S = 0.05  # a join before the dispatcher created the room (auto_create off) is tried again, doubling
JOIN_RETRY_MAX_S = 1.0


async def _join(url: str, token: str, deadline: float) -> RtcRoom:
    pause = JOIN_RETRY_FIRST_S
    while True:
        room = RtcRoom(url, token)
        try:
            await room.connect(max(deadline - time.monotonic(), 0.1))
            return room
        except JoinError as exc:
            await room.disconnect()
            if not room_not_created_yet(exc) or time.monotonic() + pause > deadline:
                raise
            await asyncio.sleep(pause)  # bounded by the deadline
            pause = min(pause * 2, JOIN_RETRY_MAX_S)


async def _until_ready(room: RtcRoom, session_id: str) -> None:
    while True:
        packet = await room.receive(AGENT_STATUS_TOPIC)
        payload = json.loads(packet.payload)
        if not packet.from_agent or not isinstance(payload, dict) or payload.get("sessionId") != session_id:
            continue
        if payload.get("type") == "agent.ready":
            return
        if payload.get("type") == "agent.failed":
            raise RuntimeError(f"agent.failed at {payload.get('stage')}: {payload.get('reason')}")


async def journey(client: httpx.AsyncClient, path: str, ready_timeout_s: float) -> dict[str, Any]:
    """One frontend: POST, join, agent.ready, leave; never raises (the outcome says what went wrong)."""
    out: dict[str, Any] = {"ok": False}
    started = time.monotonic()
    room: RtcRoom | None = None
    try:
        response = await client.post(path, headers={"Idempotency-Key": uuid.uuid4().hex})
        out["post_ms"], out["status"] = 1000 * (time.monotonic() - started), response.status_code
        if response.status_code != 202:
            out["error"] = f"http_{response.status_code}"
            return out
        body = response.json()
        out["session_id"] = str(body["sessionId"])
        deadline = started + ready_timeout_s
        room = await _join(str(body["livekitUrl"]), str(body["token"]), deadline)
        out["join_ms"] = 1000 * (time.monotonic() - started)
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            await _until_ready(room, out["session_id"])
        out["ready_ms"], out["ok"] = 1000 * (time.monotonic() - started), True
    except (JoinError, RoomClosedError, RuntimeError, TimeoutError, httpx.HTTPError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if room is not None:
            await room.disconnect()  # the frontend leaves: the agent's job ends after its rejoin grace
    return out


async def run(
    api_url: str, path: str, headers: dict[str, str], rate: float, duration_s: float, timeout_s: float
) -> dict[str, Any]:
    """Start ``rate`` frontends a second for ``duration_s``; every one's outcome once all are done."""
    count = max(int(rate * duration_s), 1)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10.0) as client:
        began = time.monotonic()
        tasks = []
        for index in range(count):
            await asyncio.sleep(max(began + index / rate - time.monotonic(), 0.0))  # open loop, fixed rate
            tasks.append(asyncio.create_task(journey(client, path, timeout_s)))
        sessions = await asyncio.gather(*tasks)
    return {"offered": count, "offered_s": time.monotonic() - began, "sessions": sessions}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the frontends, print the results as one JSON object, exit."""
    parser = argparse.ArgumentParser(prog="python -m bench.real_frontends", description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--path", required=True, help="the session request's path")
    parser.add_argument("--headers", default="{}", help="JSON object of request headers (the API key)")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--ready-timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    results = asyncio.run(
        run(args.api_url, args.path, json.loads(args.headers), args.rate, args.duration_s, args.ready_timeout_s)
    )
    print(json.dumps(results))
    exit_now_if_rtc_ran(0)


if __name__ == "__main__":
    main(sys.argv[1:])
