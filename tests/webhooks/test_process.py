"""``python -m services.webhooks`` as a process: it starts, delivers, and stops on SIGTERM within its bound."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid

from fastapi import FastAPI

from devstack.stack_handle import REPO_ROOT
from tests.polling import wait_until
from tests.webhooks.conftest import new_org_client
from tests.webhooks.receiver import Receiver
from tests.webhooks.sender_stack import publisher, status_change


async def test_the_service_process_delivers_and_stops_on_sigterm(
    hooks_api: FastAPI, database_url: str, hooks_redis_url: str, receiver: Receiver
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": hooks_redis_url,
        "DATABASE_URL": database_url,
        "DEV_MODE": "true",
        "CONSUMER_NAME": f"hooks-proc-{uuid.uuid4().hex[:8]}",
        "LOG_JSON": "true",
    }
    async with await new_org_client(hooks_api, database_url) as client:
        path = f"/ok/{uuid.uuid4().hex}"
        assert (await client.post("/api/webhooks", json={"url": receiver.base_url + path})).status_code == 201
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.webhooks", cwd=REPO_ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with publisher(hooks_redis_url) as events:
                await events.publish(status_change(client.headers["x-test-org"], uuid.uuid4().hex, "ready", "ended"))
                await wait_until(lambda: receiver.to(path), deadline_s=30, what="a delivery from the process")
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=25)
            took = time.monotonic() - stopping
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = (await proc.stdout.read()).decode() if proc.stdout else ""
    assert code == 0, output[-3000:]
    assert took < 10, f"stopped in {took:.1f} s"
    assert "service_stopped" in output
