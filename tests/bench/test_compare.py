"""Comparing two runs: the change of each key figure and its verdict; an older report's missing figures are "n/a";
``python -m bench compare A.json B.json`` from saved files."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bench.compare import caveats, change_of, compare, render
from bench.compare_run import commit_of, parse
from bench.compare_run import main as compare_main
from tests.bench.sample_results import results_v1, results_v2


def _row(rows: list, label: str):  # type: ignore[no-untyped-def]
    return next(row for row in rows if row.label == label)


def test_a_change_is_better_or_worse_by_the_figures_direction() -> None:
    assert change_of(10.0, 5.0, lower_is_better=True) == ("-5.0 (-50%)", "better")
    assert change_of(10.0, 5.0, lower_is_better=False) == ("-5.0 (-50%)", "**worse**")
    assert change_of(100.0, 103.0, lower_is_better=True) == ("+3.0 (+3%)", "~")  # within the noise
    assert change_of(0.0, 2.0, lower_is_better=True, unit="") == ("+2", "**worse**")  # a lost session appeared
    assert change_of(0.0, 0.0, lower_is_better=True, unit="") == ("+0", "~")
    assert change_of(None, 5.0, lower_is_better=True) == ("n/a", "")


def test_a_regression_in_cpu_per_session_shows_in_one_table() -> None:
    before, after = results_v2(), results_v2()
    after["e2e"]["cpu_s_per_1000"]["dispatcher"] = 4.0
    rows = compare(before, after)
    dispatcher = _row(rows, "CPU ms/session sustained: dispatcher")
    assert (dispatcher.before, dispatcher.after, dispatcher.change, dispatcher.verdict) == (
        2.0,
        4.0,
        "+2.0 (+100%)",
        "**worse**",
    )
    assert _row(rows, "CPU ms/session sustained: total").after == 42.0
    text = render(before, after, "HEAD~1", "working tree")
    assert "Worse by more than 5%: CPU ms/session sustained: dispatcher, CPU ms/session sustained: " in text
    assert "| CPU ms/session sustained: dispatcher | 2.0 ms | 4.0 ms | +2.0 (+100%) | **worse** |" in text
    assert "| API / ceiling throughput | 85% | 85% | +0 (+0%) | ~ |" in text


def test_an_older_report_compares_with_n_a_for_what_it_lacks() -> None:
    rows = compare(results_v1(), results_v2())
    assert _row(rows, "ready/s at saturation (sustained)").change == "n/a"
    assert _row(rows, "overload: 503 p99").before is None
    assert _row(rows, "CPU ms/session sustained: webhooks").before is None
    # the old total lacks the webhook sender: compared as measured, the change shows it
    assert _row(rows, "CPU ms/session sustained: total").before == 37.0
    text = render(results_v1(), results_v2(), "old", "new")
    assert "| ready/s at saturation (sustained) | n/a | 33.3/s | n/a |  |" in text
    assert "- **old**: commit n/a, profile `quick`, results schema 1;" in text


def test_runs_on_different_profiles_or_machines_are_flagged() -> None:
    before, after = results_v2(), results_v2()
    assert caveats(before, after) == []
    after["profile"] = "full"
    after["machine_before"] = {**after["machine_before"], "cpu_model": "another cpu", "load_average": [9.5, 1, 1]}
    notes = caveats(before, after)
    assert len(notes) == 3
    assert notes[2].startswith("The machine was busy (0.5 vs 9.5 load average at start, 2 cores)")


def test_compare_reads_two_saved_reports_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(results_v1()))
    after.write_text(json.dumps(results_v2()))
    out = tmp_path / uuid.uuid4().hex
    assert compare_main([str(before), str(after), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"# Benchmark comparison: {before} -> {after}" in printed
    assert (out / "compare.md").read_text().startswith("# Benchmark comparison")
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert {"label": "burst: lost", "unit": "", "before": 0, "after": 0, "change": "+0", "verdict": "~"} in rows


def test_compare_wants_two_reports_or_a_revision(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        compare_main([str(tmp_path / "only-one.json")])


def test_with_a_revision_every_other_argument_goes_to_the_benchmark_runs(tmp_path: Path) -> None:
    args, bench_args = parse(["--ref", "HEAD~1", "--no-profile", "--max-load", "99", "--out", str(tmp_path)])
    assert (args.ref, args.out) == ("HEAD~1", tmp_path)
    assert bench_args == ["--no-profile", "--max-load", "99"]
    args, bench_args = parse(["a.json", "b.json"])
    assert (args.ref, args.reports, bench_args) == (None, [Path("a.json"), Path("b.json")], [])


def test_the_commit_outside_git_is_unknown(tmp_path: Path) -> None:
    assert commit_of(tmp_path) == "unknown"
