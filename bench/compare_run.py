"""``python -m bench compare``: two saved reports side by side, or a revision against the working tree.

``compare A.json B.json`` reads two reports and prints the comparison. ``compare --ref REV`` runs the quick benchmark
on REV first, in a temporary ``git worktree`` with its own environment (``uv sync --frozen`` from REV's own uv.lock),
then on the working tree, one after the other so both get the same machine; then prints the comparison and writes
it (compare.md, compare.json, both runs' reports) into ``--out``. Other arguments go to both benchmark runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.compare import load, render, write

RESULTS = Path(__file__).resolve().parent / "results"
RUN_TIMEOUT_S = 1800.0  # one quick benchmark takes about 4 minutes; a hung one must not hold the machine forever


def git(*args: str, cwd: Path) -> str:
    """Run git in ``cwd``; its output, stripped."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_of(repo: Path) -> str:
    """The checked-out commit, ``+changes`` when the tree differs from it; "unknown" outside git."""
    try:
        return git("describe", "--always", "--dirty=+changes", cwd=repo)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _uv() -> str:
    return shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")


def _env() -> dict[str, str]:
    """This environment without the active virtual environment: each tree's uv uses its own ``.venv``."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}


def run_bench(cwd: Path, python: list[str], out: Path, bench_args: list[str]) -> dict[str, Any]:
    """``python -m bench --quick`` in ``cwd`` with its report in ``out``; the results it wrote."""
    argv = [*python, "-m", "bench", "--quick", *bench_args, "--out", str(out)]
    subprocess.run(argv, cwd=cwd, env=_env(), check=True, timeout=RUN_TIMEOUT_S)
    return load(out / "latest.json")


def run_ref(repo: Path, ref: str, out: Path, bench_args: list[str]) -> dict[str, Any]:
    """The quick benchmark of ``ref``, from a temporary worktree with its own environment (removed afterwards)."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repo)
    scratch = Path(tempfile.mkdtemp(prefix="agentready-bench-ref-"))
    tree = scratch / "tree"
    git("worktree", "add", "--detach", str(tree), sha, cwd=repo)
    try:
        subprocess.run([_uv(), "sync", "--frozen"], cwd=tree, env=_env(), check=True, timeout=RUN_TIMEOUT_S)
        results = run_bench(tree, [_uv(), "run", "--frozen", "python"], out, bench_args)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    results["commit"] = f"{sha[:12]} ({ref})"
    return results


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``compare``'s own arguments, and (with ``--ref``) the rest, which go to both benchmark runs."""
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__)
    parser.add_argument("--ref", help="run the quick benchmark on this revision and on the working tree")
    parser.add_argument("--out", type=Path, default=None, help="where to write the comparison (--ref: both runs too)")
    if any(arg == "--ref" or arg.startswith("--ref=") for arg in argv):
        return parser.parse_known_args(argv)  # no reports to read: every other argument is the benchmark's
    parser.add_argument("reports", nargs=2, type=Path, help="two saved reports: before.json after.json")
    return parser.parse_args(argv), []


def main(argv: list[str]) -> int:
    """Compare two saved reports, or run REV and the working tree and compare them."""
    args, bench_args = parse(argv)
    if args.ref is None:
        before, after = load(args.reports[0]), load(args.reports[1])
        names = (str(args.reports[0]), str(args.reports[1]))
    else:
        repo = Path(git("rev-parse", "--show-toplevel", cwd=Path.cwd()))
        out = args.out or RESULTS / "compare"
        try:
            before = run_ref(repo, args.ref, out / "before", bench_args)
            after = run_bench(repo, [sys.executable], out / "after", bench_args)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"bench compare: a benchmark run failed ({exc}); its output is above", file=sys.stderr)
            return 1
        after["commit"] = commit_of(repo)
        names = (args.ref, "working tree")
        args.out = out
    print(render(before, after, *names))
    if args.out is not None:
        print(f"\ncomparison: {write(before, after, names, args.out)}")
    return 0
