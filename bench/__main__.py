"""``python -m bench [--quick]``: run the benchmark and write the report into bench/results/.

``python -m bench compare A.json B.json`` compares two saved reports; ``python -m bench compare --ref REV`` runs the
quick benchmark on REV and on the working tree and compares them (bench.compare_run).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bench.compare_run import commit_of
from bench.compare_run import main as compare_main
from bench.config import FULL, QUICK
from bench.report import headline, write
from bench.runner import run_benchmark
from services.runtime.logging import configure_logging

RESULTS = Path(__file__).resolve().parent / "results"


def wait_for_quiet_machine(max_load: float, deadline_s: float) -> float:
    """Wait (bounded) until the 1-minute load average is at most ``max_load``; return the load then."""
    log = structlog.get_logger("bench")
    started = time.monotonic()
    while (load := os.getloadavg()[0]) > max_load and time.monotonic() - started < deadline_s:
        log.info("waiting_for_quiet_machine", load_1m=load, wanted=max_load)
        time.sleep(5)
    return load


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, wait for a quiet machine, run, write the report (or ``compare``: see bench.compare_run)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        raise SystemExit(compare_main(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short profile (under 4 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the report goes")
    parser.add_argument("--agent-delay-ms", type=int, default=None, help="simulated agent start-up time")
    parser.add_argument("--burst", type=int, default=None, help="sessions in the burst")
    parser.add_argument("--max-load", type=float, default=1.0, help="wait until the load average is below this")
    parser.add_argument("--load-wait-s", type=float, default=None, help="... but no longer (default 120; quick 20)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--keep-logs",
        type=Path,
        default=None,
        help="run in this directory and keep it: every process's log (logs/), to find why a session failed",
    )
    args = parser.parse_args(argv)
    configure_logging("bench", "INFO")
    config = QUICK if args.quick else FULL
    changes: dict[str, object] = {"profile": not args.no_profile}
    if args.agent_delay_ms is not None:
        changes["agent_delay_ms"] = args.agent_delay_ms
    if args.burst is not None:
        changes["burst"] = args.burst
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    load_wait_s = args.load_wait_s if args.load_wait_s is not None else (20.0 if args.quick else 120.0)
    wait_for_quiet_machine(args.max_load, load_wait_s)
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run_benchmark(config, args.keep_logs))
        print(f"logs kept in {args.keep_logs / 'logs'}")
    else:
        with tempfile.TemporaryDirectory(prefix="agentready-bench-") as work:
            results = asyncio.run(run_benchmark(config, Path(work)))
    results["commit"] = commit_of(Path(__file__).resolve().parent.parent)
    report = write(results, args.out)
    print(headline(results))
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
