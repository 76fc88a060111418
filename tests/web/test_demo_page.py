"""The demo page in headless Chromium: served from another origin than the API (so CORS is exercised), it starts a
session with a publishable key, joins the room and shows "Agent ready"; the test says which path carried ready.

On the simulator, livekit-client cannot join (no WebRTC there): the client degrades to SSE with the client token.
On a real livekit-server (tests/conftest's discovery: skipped without one, failed under CI=true) it must be the data
channel.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from dataclasses import replace
from pathlib import Path

from devstack.livekit_discovery import LiveKitChoice
from devstack.livekit_side import LiveKitSide
from devstack.profiles import E2E, Profile
from devstack.stack import SERVICES, StackHandle, start_stack
from tests.e2e_livekit.conftest import REAL_E2E, side_of
from tests.stack_fixtures import separate_database, with_redis_db
from tests.web.browser import DIST, REPO, drive_demo, require_browser
from tests.web.demo_site import DemoServer, demo_site

# streams of their own: no other stack's dispatcher or session store reads them (1-4: tests/e2e*, tests/devstack)
SIM_REDIS_DB, LIVEKIT_REDIS_DB = 5, 6
READY_TIMEOUT_S = 40.0


async def publishable_key(stack: StackHandle, org: str, flow_id: str, origin: str) -> str:
    """``create-key --publishable`` for ``flow_id`` from ``origin`` (the CLI of the browser API contract)."""
    argv = [sys.executable, "-m", "services.api", "create-key", "--org", org, "--publishable"]
    argv += ["--flow", flow_id, "--origin", origin]
    proc = await asyncio.create_subprocess_exec(
        *argv, env=dict(stack.env), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, f"create-key --publishable failed: {err.decode()}"
    key = out.decode().strip()
    assert key.startswith("pk_"), key
    return key


async def open_demo(stack: StackHandle, org: str, site: DemoServer, screenshot: Path) -> dict[str, object]:
    """A flow (secret key, server side), a publishable key for the page's origin, then the page in Chromium."""
    async with stack.client() as client:
        created = await client.post("/api/flows", json={"name": f"web-{org}", "greeting": "Hello from the demo!"})
        assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    site.config = {
        "apiUrl": stack.api_url,
        "flowId": flow_id,
        "publishableKey": await publishable_key(stack, org, flow_id, site.origin),
    }
    assert site.origin != stack.api_url  # another origin: the page's calls are cross-origin (CORS)
    shown = await drive_demo(f"{site.origin}/demo/", screenshot, READY_TIMEOUT_S)
    print(f"demo page: state={shown.get('state')} readyVia={shown.get('readyVia')} {shown.get('detail')}")
    # the driver failed (a timeout, a crash): say why, with the page's console, instead of a KeyError further down
    assert shown.get("state") != "driver-error", f"the browser driver failed: {shown.get('error')}\n{shown.get('log')}"
    print("timings:", shown.get("timings"))
    assert_no_secret_sent(shown["apiCalls"], stack.api_key, site.config["publishableKey"])
    return shown


def assert_no_secret_sent(calls: list[dict[str, str | None]], secret_key: str, publishable_key: str) -> None:
    """The page used only the publishable key (to start) and the session's client token (a JWT; SSE in the URL)."""
    assert calls, "the page made no API call"
    start, *rest = calls
    assert (start["method"], start["bearer"]) == ("POST", publishable_key), start
    for call in rest:
        token = call["bearer"] or call["accessToken"] or ""
        assert token.count(".") == 2 and secret_key not in token, call  # a JWT: the client token
    assert any(str(call["path"]).endswith("/events") and call["accessToken"] for call in rest), calls


async def show_demo(
    redis_url: str, database_url: str, screenshot: Path, profile: Profile, livekit: LiveKitSide | None, redis_db: int
) -> dict[str, object]:
    """A stack of ``profile`` (its own organisation, databases; ``livekit``: the simulator unless given) and the page
    on it, from another origin."""
    org = f"web-{uuid.uuid4().hex[:8]}"
    async with (
        separate_database(database_url) as own_database,
        await start_stack(
            replace(profile, org=org),
            redis_url=with_redis_db(redis_url, redis_db),
            database_url=own_database,
            services=SERVICES,
            livekit=livekit,
        ) as stack,
    ):
        with demo_site(DIST) as site:
            return await open_demo(stack, org, site, screenshot)


async def test_demo_page_gets_ready_over_sse_on_the_simulator(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """Simulator: the room join fails cleanly, SSE (``?access_token=``) delivers ready, the page says so."""
    require_browser()
    shown = await show_demo(redis_url, database_url, tmp_path / "ready.png", E2E, None, SIM_REDIS_DB)
    assert shown["state"] == "ready", shown
    assert shown["text"] == "Agent ready - listening...", shown
    assert shown["readyVia"] == "sse", shown
    assert "the room was not joined" in str(shown["detail"]), shown


async def test_demo_page_gets_ready_over_the_data_channel_on_livekit(
    real_livekit_choice: LiveKitChoice, redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """A real livekit-server: the page joins over WebRTC and agent.ready comes from the agent on the data channel (the
    agent waits for the user, so ready cannot precede the join)."""
    require_browser()
    livekit = side_of(real_livekit_choice)
    shown = await show_demo(redis_url, database_url, tmp_path / "ready.png", REAL_E2E, livekit, LIVEKIT_REDIS_DB)
    assert shown["state"] == "ready", shown
    assert shown["text"] == "Agent ready - listening...", shown
    assert shown["readyVia"] == "data-channel", shown
    keep_screenshot(tmp_path / "ready.png")


def keep_screenshot(taken: Path) -> None:
    """With ``DEMO_SCREENSHOT=PATH`` (docs/demo-ready.png refreshes the README's), keep the ready page's picture."""
    if target := os.environ.get("DEMO_SCREENSHOT"):
        shutil.copyfile(taken, REPO / target)
