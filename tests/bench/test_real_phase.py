"""The real-LiveKit phase's pure parts: which server (or why none), the stack's environment, the report."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bench.real_livekit import real_livekit_side, real_profile
from bench.real_phase import failure_reason
from bench.report import headline
from bench.report_real import real_headline, real_section
from devstack.livekit_side import LiveKitSide
from devstack.processes import ChildExit
from devstack.readiness import NotReadyError
from devstack.stack import StackExitedError, stack_env


def test_no_real_server_gives_a_one_line_reason() -> None:
    reason = real_livekit_side({"LIVEKIT_URL": "ws://lk.example:7880"}, allow_build=False)
    assert isinstance(reason, str)
    assert reason.startswith("no real LiveKit server: LIVEKIT_URL is set but LIVEKIT_API_KEY")
    assert "\n" not in reason


def test_a_server_from_the_environment_is_used_as_given() -> None:
    secret = uuid.uuid4().hex
    env = {"LIVEKIT_URL": "ws://lk.example:7880", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": secret}
    side = real_livekit_side(env, allow_build=False)
    assert isinstance(side, LiveKitSide)
    assert (side.url, side.api_secret, side.simulated, side.server) == ("ws://lk.example:7880", secret, False, None)


def test_the_real_profile_runs_the_agent_on_webrtc_with_job_count_load() -> None:
    side = LiveKitSide("http://127.0.0.1:7999", "devkey", "secret", False, "a test server")
    for executor in ("thread", "process"):
        profile = real_profile(executor)
        urls = {"redis_url": "redis://r", "database_url": "postgresql://p"}
        env = stack_env(profile, {}, **urls, livekit=side, api_port=1, sim_port=2)
        assert env["AGENT_ROOM_BACKEND"] == "livekit"
        assert env["AGENT_JOB_EXECUTOR"] == executor
        # the real server offers no job at load >= 0.7: the sessions the dispatcher keeps waiting must fit below
        assert 0.7 * int(env["AGENT_MAX_JOBS"]) >= int(env["DISPATCH_MAX_WAITING"])


def _results(real: dict[str, Any]) -> dict[str, Any]:
    machine = {"cpus": 2, "cpu_model": "test", "memory_gb": 1.0, "load_average": [3.5, 2.0, 1.0]}
    return {
        "profile": "quick",
        "config": {"agent_delay_ms": 500, "open_fractions": []},
        "machine_before": machine,
        "machine_after": machine,
        "phases": [],
        "e2e": {"rate": 200.0, "overhead_ms": {}, "cpu_s_per_1000": {"agent": 19.0, "livekit_sim": 3.0}},
        "burst": {"requested": 0, "accepted": 0, "all_ready_s": None, "lost": 0, "duplicated_agent_jobs": 0},
        "peak_rss_mb": {},
        "real_livekit": real,
    }


def test_a_skipped_phase_says_why_in_the_section_and_the_headline() -> None:
    reason = "no real LiveKit server: no Go toolchain (and no livekit-server binary)"
    results = _results({"skipped": reason})
    assert real_section(results).endswith(f"skipped: {reason}")
    assert "Real LiveKit phase skipped: no real LiveKit server: no Go toolchain" in headline(results)


def test_the_section_shows_each_executor_and_cpu_next_to_the_simulator() -> None:
    run = {
        "accepted": 100,
        "ready": 99,
        "statuses": {"ready": 99, "expired": 1},
        "settled_after_s": 4.5,
        "ready_per_s": 4.8,
        "post_to_ready_ms": {"count": 99, "p50": 812.0, "p95": 1430.0, "p99": 2210.0},
        "cpu_ms_per_session": {"agent": 60.0, "livekit_server": 20.0},
    }
    real = {
        "server": "livekit-server v1.13.5 from the cache",
        "rate": 5.0,
        "duration_s": 20.0,
        "runs": {"thread": run, "process": {"failed": "the stack did not come up: agent exited with code 1"}},
    }
    section = real_section(_results(real))
    assert "| thread | 100 | 99 | 4.8 | 812 / 1430 / 2210 | 4.5 |" in section
    assert "| process | failed: the stack did not come up: agent exited with code 1 |" in section
    assert "| livekit_server | 20.0 | 3.0 |" in section  # the simulator's stand-in beside the real server
    assert "| **total** | **80.0** | **22.0** |" in section
    assert "2 cores would serve at most: thread executor ~25/s" in section
    line = real_headline(_results(real))
    assert "thread executor 4.8 ready/s, POST→ready p50/p95/p99 812 / 1430 / 2210 ms" in line
    assert "process executor failed" in line


def test_the_section_shows_what_the_joining_frontends_saw() -> None:
    run = {
        "accepted": 40,
        "ready": 38,
        "statuses": {"ended": 38, "failed": 2},
        "settled_after_s": 3.0,
        "ready_per_s": 1.9,
        "post_to_ready_ms": {"count": 38, "p50": 2400.0, "p95": 3100.0, "p99": 3500.0},
        "frontends": {
            "offered": 40,
            "saw_ready": 38,
            "errors": {"TimeoutError": 2},
            "post_to_ready_ms": {"count": 38, "p50": 2450.0, "p99": 3550.0},
            "join_ms": {"count": 40, "p50": 300.0},
        },
        "cpu_ms_per_session": {"agent": 600.0},
    }
    real = {"server": "livekit-server v1.13.5", "rate": 2.0, "duration_s": 20.0, "runs": {"thread": run}}
    section = real_section(_results(real))
    assert "| 38/40, 2450 / 3550, TimeoutError 2 |" in section
    assert "frontends that join their rooms with livekit.rtc" in section


def test_the_real_profile_waits_for_the_joining_frontend_and_greets_it() -> None:
    side = LiveKitSide("http://127.0.0.1:7999", "devkey", "secret", False, "a test server")
    env = stack_env(real_profile("thread"), {}, redis_url="redis://r", database_url="postgresql://p", livekit=side,
                    api_port=1, sim_port=2)  # fmt: skip
    assert env["AGENT_WAIT_FOR_USER"] == "true" and env["AGENT_TTS"] == "espeak"
    assert float(env["AGENT_USER_REJOIN_GRACE_SECONDS"]) < 1  # the frontend left at agent.ready: end the job soon


def test_a_stack_that_did_not_come_up_says_why_from_the_log_of_the_process_that_ended_it(tmp_path: Path) -> None:
    (tmp_path / "livekit-server.log").write_text("starting\nlisten tcp 127.0.0.1:7881: bind: address already in use\n")
    ended = StackExitedError(ChildExit("livekit-server", 0))
    assert failure_reason(ended, tmp_path) == (
        "livekit-server exited with code 0 while the stack was starting "
        "(last lines: starting / listen tcp 127.0.0.1:7881: bind: address already in use)"
    )
    assert failure_reason(StackExitedError(ChildExit("api", 1)), tmp_path) == (
        "api exited with code 1 while the stack was starting"  # no log of its own: the reason alone
    )
    assert failure_reason(NotReadyError("no answer within 30s\nmore"), tmp_path) == "no answer within 30s"
