"""The pure, tested helpers of benchmarks/scaling.py: linear fits and verdicts, /proc parsing, and
running one measured child process (CPU time and peak memory of its whole process tree).

A plain module so tests/benchmarks/test_scaling_helpers.py imports it (pytest `pythonpath`) instead
of loading the 1,000-line script by path.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SAMPLE_SECONDS = 0.2
# Verdict thresholds: the marginal cost per record may drift this much before we call a cost
# non-linear (wall time on a shared machine moves by more than that from load alone; CPU time is
# steadier), and a peak may grow this fraction of its 1× value from 1× to 4× and still be "flat".
LINEAR_TOLERANCE = 0.15
FLAT_TOLERANCE = 0.10
PROJECT_RECORDS = 800_000  # issue 7: "users train on ≈800 k ECGs"
KIB_PER_MIB = 1024.0
LOG_TAIL_LINES = 15


class ScalingError(RuntimeError):
    """A child step failed or produced no usable result; the message names the step and its log."""


# ---- pure helpers (tested in tests/benchmarks/test_scaling_helpers.py) ------------------------------


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line y = intercept + slope · x and its coefficient of determination."""

    slope: float
    intercept: float
    r_squared: float

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit:
    """Ordinary least squares on ≥ 2 points with distinct x (R² = 1 when y is constant and fitted)."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"need ≥ 2 paired points, got {len(xs)} x and {len(ys)} y")
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all x values are equal: no line through them")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return LinearFit(slope, intercept, 1.0 if total == 0 else 1.0 - residual / total)


def marginal_costs(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """Cost per unit of x between consecutive points: constant for y = a + b·x whatever a is."""
    return [(y1 - y0) / (x1 - x0) for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False)]


def linearity(
    xs: Sequence[float], ys: Sequence[float], unit: str, tolerance: float = LINEAR_TOLERANCE
) -> dict[str, Any]:
    """Per-unit costs, their ratios to the first size, the marginal costs and a verdict from them.

    `drift` = the largest relative change of a later marginal cost against the first one: 0 for a
    straight line, > 0 when each extra record costs more than the previous ones (super-linear).
    """
    fit = linear_fit(xs, ys)
    per_unit = [y / x for x, y in zip(xs, ys, strict=True)]
    marginal = marginal_costs(xs, ys)
    drift = max((m / marginal[0] - 1.0 for m in marginal[1:]), key=abs) if marginal[0] > 0 else float("nan")
    if drift != drift:  # NaN: the first increment did not cost anything measurable
        verdict = "not assessable: the time did not grow from the first to the second size (noise > increment)"
    elif abs(drift) <= tolerance:
        verdict = f"linear within {100 * abs(drift):.0f} %"
    elif drift > 0:
        verdict = f"NOT linear: the marginal cost per {unit} grows {100 * drift:.0f} %"
    else:
        verdict = f"sub-linear: the marginal cost per {unit} falls {100 * -drift:.0f} % (fixed costs or noise)"
    return {
        "fit": asdict(fit),
        "per_unit": per_unit,
        "per_unit_ratio": [c / per_unit[0] for c in per_unit],
        "marginal": marginal,
        "marginal_drift": drift,
        "verdict": verdict,
    }


def flatness(
    xs: Sequence[float],
    peaks_mib: Sequence[float],
    tolerance: float = FLAT_TOLERANCE,
    project_to: float | None = PROJECT_RECORDS,
) -> dict[str, Any]:
    """How much a memory peak moves with size, and where the fitted line would be at `project_to` records.

    At small sizes a peak is dominated by the interpreter and its libraries (~300 MiB), so a peak can
    look "flat" relative to itself while still carrying a per-record term; the projection to the real
    cohort's size shows whether that term matters. `project_to=None` skips it (RSS, whose file-backed
    part is page cache the kernel reclaims: extrapolating it says nothing about memory needed).
    """
    fit = linear_fit(xs, peaks_mib)
    spread = max(peaks_mib) - min(peaks_mib)
    growth = peaks_mib[-1] - peaks_mib[0]
    relative = growth / peaks_mib[0] if peaks_mib[0] > 0 else float("inf")
    kib_per_record = KIB_PER_MIB * fit.slope
    projected = None if project_to is None else fit.predict(project_to)
    if abs(relative) <= tolerance:
        verdict = f"flat within {spread:.0f} MiB ({100 * spread / peaks_mib[0]:.0f} % of the 1× peak)"
    else:
        verdict = f"NOT flat: {growth:+.0f} MiB from the first to the last size ({100 * relative:+.0f} %)"
    if fit.slope > 0 and project_to is not None and projected is not None:
        verdict += (
            f"; the fitted {kib_per_record:+.1f} KiB per record would give {projected / KIB_PER_MIB:.1f} GiB "
            f"at {project_to:,.0f} records"
        )
    return {
        "spread_mib": spread,
        "growth_mib": growth,
        "kib_per_record": kib_per_record,
        "projected_mib": projected,
        "projected_records": project_to,
        "fit": asdict(fit),
        "verdict": verdict,
    }


def parse_proc_status(text: str) -> dict[str, int]:
    """The `kB` fields of a /proc/<pid>/status file (VmRSS, VmHWM, RssAnon, RssFile, ...), in KiB."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    return fields


def parse_parent_pid(stat_text: str) -> int:
    """The parent pid from /proc/<pid>/stat; the command name may contain spaces and parentheses."""
    after_name = stat_text[stat_text.rindex(")") + 2 :]
    return int(after_name.split()[1])


def descendants(root: int, parent_of: dict[int, int]) -> list[int]:
    """`root` and every process below it in a pid → parent-pid map (root first)."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_of.items():
        children.setdefault(parent, []).append(pid)
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def least_disturbed(values: Sequence[float]) -> float:
    """The figure of repeated timings of the same work on a shared machine: the minimum.

    Contention and one-off warm-up can only add time, never remove it, so the minimum is the closest
    to the cost of the work itself (the same reasoning as `timeit`'s advice to take the minimum).
    """
    if not values:
        raise ValueError("nothing was timed")
    return min(values)


# ---- running a child and measuring it ---------------------------------------------------------------


@dataclass
class ChildRun:
    """Wall and CPU time (`os.wait4`, includes waited-for descendants) and memory peaks of one child."""

    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mib: float  # ru_maxrss: the largest peak RSS of the child or any waited-for descendant
    peak_anon_mib: float  # the child's own RssAnon peak (sampled)
    peak_anon_tree_mib: float  # RssAnon summed over the child and its descendants, peak over samples
    peak_file_mib: float  # the child's RssFile peak (mapped file pages: page cache)
    samples: int
    load_before: float  # 1-min load average when the child started and ended: how contended it was
    load_after: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


class _ProcessTreeSampler(threading.Thread):
    """Reads /proc every SAMPLE_SECONDS while the child runs and keeps the peaks (KiB)."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop = threading.Event()
        self.peak_anon = 0
        self.peak_anon_tree = 0
        self.peak_file = 0
        self.samples = 0

    def _parent_map(self) -> dict[int, int]:
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = parse_parent_pid((entry / "stat").read_text())
                except (OSError, ValueError, IndexError):
                    continue  # exited between listing and reading
        return parents

    def sample(self) -> None:
        tree_anon = 0
        for pid in descendants(self.pid, self._parent_map()):
            try:
                status = parse_proc_status(Path(f"/proc/{pid}/status").read_text())
            except OSError:
                continue
            anon = status.get("RssAnon", 0)
            tree_anon += anon
            if pid == self.pid:
                self.peak_anon = max(self.peak_anon, anon)
                self.peak_file = max(self.peak_file, status.get("RssFile", 0))
        self.peak_anon_tree = max(self.peak_anon_tree, tree_anon)
        self.samples += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)


def run_child(command: Sequence[str], log: Path, what: str, env: dict[str, str] | None = None) -> ChildRun:
    """Run `command` with output to `log`; wall time, exact rusage via wait4, sampled memory peaks."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as stream:
        process = subprocess.Popen(list(command), stdout=stream, stderr=subprocess.STDOUT, env=env)
        sampler = _ProcessTreeSampler(process.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            sampler.stop.set()
            sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen consistent
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise ScalingError(f"{what} failed (exit code {process.returncode}); log {log}:\n{tail}")
    return ChildRun(
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_mib=usage.ru_maxrss / KIB_PER_MIB,  # Linux: KiB
        peak_anon_mib=sampler.peak_anon / KIB_PER_MIB,
        peak_anon_tree_mib=sampler.peak_anon_tree / KIB_PER_MIB,
        peak_file_mib=sampler.peak_file / KIB_PER_MIB,
        samples=sampler.samples,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )


# ---- the training child ----------------------------------------------------------------------------
