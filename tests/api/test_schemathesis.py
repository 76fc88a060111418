"""schemathesis against the real API: every check, every phase (the stateful one follows the links it infers
between operations), a fixed seed and a bounded number of cases, on a real uvicorn with real Redis and PostgreSQL,
authenticated with real API keys of two fresh organisations (each must never see the other's objects). It must find
no server error and no response that does not match the OpenAPI document.

Run alone: ``uv run pytest tests/api/test_schemathesis.py`` (the command line it runs is printed on failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from devstack.livekit_sim import Simulator
from services.api.admin import KeyRequest, create_key
from services.api.app import create_app
from services.api.scopes import ALL_SCOPES
from services.api.settings import ApiSettings

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20_261_130
MAX_EXAMPLES = 25  # per operation and phase: about a minute on 2 shared cores
DEADLINE_S = 240.0


@pytest.fixture
async def served_api(api_app: FastAPI, api_settings: ApiSettings, sim: Simulator) -> AsyncIterator[str]:
    """The API (its own app, against the LiveKit simulator: the presence check asks LiveKit) served by uvicorn on a
    free loopback port. (``api_app``: the tables exist.)"""
    app = create_app(api_settings.model_copy(update={"livekit_url": sim.url}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "uvicorn stopped during start-up"
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    served_api: str, database_url: str, tmp_path: Path
) -> None:
    keys = [
        (await create_key(database_url, f"fuzz-{uuid.uuid4().hex[:8]}", request=KeyRequest(scopes=ALL_SCOPES)))[0]
        for _ in range(2)
    ]
    identities = tmp_path / "auth.json"  # the file tests/api/schemathesis.toml names under [auth.wfc]
    identities.write_text(
        json.dumps(
            {
                "auth": [
                    {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
                    for name, key in zip(("first-org", "second-org"), keys, strict=True)
                ]
            }
        )
    )
    command = [
        str(Path(sys.executable).with_name("st")),
        "--no-color",
        f"--config-file={CONFIG}",
        "run",
        f"{served_api}/openapi.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--seed={SEED}",
        f"--max-examples={MAX_EXAMPLES}",
        "--workers=1",
        f"--report-dir={tmp_path}",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "AGENTREADY_FUZZ_AUTH": str(identities)},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=DEADLINE_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"schemathesis did not finish within {DEADLINE_S:g}s")
    report = output.decode(errors="replace")
    shown = " ".join(command)
    assert process.returncode == 0, f"{shown}\n{report[-20_000:]}"
    links = re.search(r"API Links:\s+(\d+) covered", report)
    assert links and int(links.group(1)) > 0, f"the stateful phase followed no link:\n{report[-5_000:]}"
