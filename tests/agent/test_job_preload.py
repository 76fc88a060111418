"""With the process executor, livekit-agents' forkserver imports our job modules once (``preload_modules``) and every
job process inherits them, instead of importing them anew per job (docs/agent-cost.md: ~1 s of CPU per job on 2
cores). multiprocessing skips a preload module that fails to import without a word, so this checks, in a real
forkserver, that each module we name is one a job runs and that it imports there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.agent import worker
from services.agent.worker import job_modules
from tests.agent.worker_settings import simulator_agent_settings

ROOT = Path(__file__).resolve().parents[2]
# A forkserver of its own (the test process's may be running already with other preloads): a pool worker forked from
# it reports which of the modules it has without importing anything.
_IN_A_FORKSERVER = """
import json, multiprocessing, sys
modules = json.loads(sys.argv[1])
context = multiprocessing.get_context("forkserver")
context.set_forkserver_preload(modules)
with context.Pool(1) as pool:
    probe = "[m for m in %r if m in __import__('sys').modules]" % (modules,)
    print(json.dumps(pool.apply(eval, (probe,))))
"""


@pytest.mark.parametrize("backend", ["livekit", "simulator"])
def test_a_job_process_inherits_the_modules_its_job_runs(backend: str) -> None:
    settings = simulator_agent_settings("ws://127.0.0.1:1", "redis://127.0.0.1:1", "agent", agent_room_backend=backend)
    modules = job_modules(settings)
    assert worker.run_job.__module__ in modules  # the job's entrypoint, and what it imports with it
    assert f"services.agent.room_{backend}" in modules  # imported only when a job makes its room
    done = subprocess.run(
        [sys.executable, "-c", _IN_A_FORKSERVER, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == modules, done.stderr[-2000:]
