"""The pure helpers of benchmarks/scaling.py (in benchmarks/scaling_helpers.py): fits, verdicts, /proc
parsing, and one measured child."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import scaling_helpers as scaling


def test_linear_fit_recovers_slope_intercept_and_r2() -> None:
    fit = scaling.linear_fit([1.0, 2.0, 4.0], [5.0 + 3.0, 5.0 + 6.0, 5.0 + 12.0])
    assert fit.slope == pytest.approx(3.0)
    assert fit.intercept == pytest.approx(5.0)
    assert fit.r_squared == pytest.approx(1.0)
    noisy = scaling.linear_fit([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    assert 0.0 < noisy.r_squared < 1.0


def test_linear_fit_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError, match="paired"):
        scaling.linear_fit([1.0], [2.0])
    with pytest.raises(ValueError, match="equal"):
        scaling.linear_fit([2.0, 2.0], [1.0, 3.0])


def test_fixed_cost_is_linear_but_lowers_per_record_cost() -> None:
    records = [1000.0, 2000.0, 4000.0]
    seconds = [4.0 + 0.003 * r for r in records]  # 4 s start-up + 3 ms per record
    result = scaling.linearity(records, seconds, "record")
    assert result["verdict"] == "linear within 0 %"
    assert result["marginal"] == pytest.approx([0.003, 0.003])
    assert result["per_unit_ratio"][2] < 0.6  # the start-up cost is amortised, not a sign of sub-linearity


def test_quadratic_term_is_reported_as_not_linear() -> None:
    records = [1000.0, 2000.0, 4000.0]
    seconds = [0.001 * r + 1e-6 * r * r for r in records]
    result = scaling.linearity(records, seconds, "record")
    assert result["verdict"].startswith("NOT linear")
    assert result["marginal_drift"] == pytest.approx((0.001 + 6e-3) / (0.001 + 3e-3) - 1.0)


def test_flatness_verdicts() -> None:
    records = [1000.0, 2000.0, 4000.0]
    flat = scaling.flatness(records, [300.0, 305.0, 310.0])
    assert flat["verdict"].startswith("flat within 10 MiB")
    assert "KiB per record" in flat["verdict"]  # a small slope is still extrapolated to the real cohort
    growing = scaling.flatness(records, [300.0, 400.0, 600.0], project_to=10_000.0)
    assert growing["verdict"].startswith("NOT flat: +300 MiB")
    assert growing["kib_per_record"] == pytest.approx(100.0 * 1024 / 1000)
    assert growing["projected_mib"] == pytest.approx(200.0 + 0.1 * 10_000)
    page_cache = scaling.flatness(records, [300.0, 400.0, 600.0], project_to=None)
    assert page_cache["projected_mib"] is None and "KiB per record" not in page_cache["verdict"]
    shrinking = scaling.flatness(records, [300.0, 298.0, 299.0])
    assert "KiB per record" not in shrinking["verdict"]


def test_parse_proc_status_and_stat() -> None:
    status = "Name:\tpython\nVmHWM:\t  2088 kB\nRssAnon:\t   156 kB\nRssFile:\t  1932 kB\nThreads:\t1\n"
    assert scaling.parse_proc_status(status) == {"VmHWM": 2088, "RssAnon": 156, "RssFile": 1932}
    assert scaling.parse_parent_pid("4242 (odd (name) x) S 17 4242 4242 0 -1") == 17


def test_descendants_walks_the_whole_tree() -> None:
    parents = {10: 1, 11: 10, 12: 10, 13: 12, 20: 1}
    assert sorted(scaling.descendants(10, parents)) == [10, 11, 12, 13]


def test_least_disturbed_is_the_minimum_and_needs_a_value() -> None:
    assert scaling.least_disturbed([9.0, 2.0, 4.0]) == 2.0
    with pytest.raises(ValueError, match="nothing"):
        scaling.least_disturbed([])


def test_run_child_measures_cpu_and_anonymous_memory(tmp_path: Path) -> None:
    code = (
        "import time\n"
        "block = bytearray(96 * 2**20)\n"  # 96 MiB, zero-filled: anonymous pages touched
        "end = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\n"
    )
    run = scaling.run_child([sys.executable, "-c", code], tmp_path / "child.log", "allocating child")
    assert run.cpu_s >= 0.45
    assert run.peak_anon_mib >= 80
    assert run.maxrss_mib >= run.peak_anon_mib - 1
    assert run.samples >= 2


def test_run_child_failure_names_the_step_and_log(tmp_path: Path) -> None:
    with pytest.raises(scaling.ScalingError, match=r"(?s)failing step failed \(exit code 3\).*boom"):
        scaling.run_child(
            [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "fail.log", "failing step"
        )
