"""Scaling study (issue 7): build time and training time per epoch at 1×, 2×, 4× the cohort size.

The claim to check is "linear, with flat memory". Everything is measured in ONE run, each step in a
fresh child process so its time and memory are its own:

1. `ecgkt synth --patients K --seed 0` for K = N, 2N, 4N (context: how long the data takes to make).
2. `ecgkt build --synthetic ROOT --out STORE`, three runs per size (cheap; the minimum time is the
   least-disturbed run), with one WFDB reader (`--workers 1`), so the build is one process and its
   CPU time and peak RSS from `os.wait4` are exact (`benchmarks/build_wfdb_speed.py` covers the
   worker scaling). A child that only imports the build's modules measures its fixed start-up cost,
   and one more, profiled build per size reports the CPU time and anonymous-memory peak of each of
   the build's steps (see `build_steps_child`), to locate a non-linear step or a per-record memory term.
3. Three epochs (default) of the supervised signal-only baseline at the `cpu` preset, 1 intra-op
   thread, through `ecgkt.train.stages.run_baseline` — the function `ecgkt train-baseline signal`
   calls — in a child process that adds one Lightning callback timing each epoch's training and
   validation parts (wall clock and the process's CPU time). The figure per size is the minimum over
   its epochs: contention with other jobs only ever adds time (wall *and* CPU: a core shared with
   another process runs with colder caches), and so would one-off costs of the first epoch, so the
   minimum is the least-disturbed epoch. Two such children per size by default.

Repeated runs go round-robin over the sizes (builds 1×, 2×, 4×, 1×, 2×, 4×, ...; then the training
children likewise), so a drift of the machine's load during the study touches every size alike
instead of biasing the last one. Every run's and every epoch's figures are kept in the JSON.

Memory. `ru_maxrss` (from `os.wait4`) is the child's peak resident set, but signals live in a
memory-mapped file, and RSS counts the file pages the process touched: reclaimable page cache that
grows with the cohort by construction. So every child is also sampled every 0.2 s from
`/proc/<pid>/status` — `RssAnon` (the process's own heap, what "flat memory" is about) and `RssFile`
(mapped file pages) — and the peaks are kept; for a child with descendants the anonymous memory of
the whole process tree is summed at each sample. Memory verdicts also extrapolate the fitted
per-record slope to 800,000 records (issue 7's cohort size): at these small sizes a peak is mostly
interpreter and libraries, so "flat relative to itself" can hide a per-record term.

Linearity. Per-record (per-sample) costs and their ratios to 1× are reported as asked, but a build
has a fixed start-up cost (imports, loading the ICD-10-CM catalogue), which makes per-record costs fall with
size even when the work is perfectly linear. The verdict therefore uses the *marginal* cost per
record between consecutive sizes — (t(2N) − t(N)) / (r(2N) − r(N)) against (t(4N) − t(2N)) /
(r(4N) − r(2N)) — which is constant for any a + b·records and grows if there is a super-linear term;
the least-squares line (slope, intercept, R²) is reported too. CPU-time figures are the robust ones on
this shared 2-core machine (wall time includes time spent waiting for a core).

    .venv/bin/python benchmarks/scaling.py [--base 600] [--quick] [--epochs 3] [--workdir DIR] [--keep]
    .venv/bin/python benchmarks/scaling.py --rerender   # new report code on the last run's numbers

Writes benchmarks/results/scaling.md and scaling.json (atomically); `--quick` (60 patients at 1×,
one run each) prints the report instead. ~7 min at the default sizes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ecgkt.atomic_files import write_text_atomically
from scaling_helpers import (
    FLAT_TOLERANCE,
    KIB_PER_MIB,
    LINEAR_TOLERANCE,
    PROJECT_RECORDS,
    SAMPLE_SECONDS,
    ScalingError,
    flatness,
    least_disturbed,
    linearity,
    parse_proc_status,
    run_child,
)

RESULTS = Path(__file__).parent / "results"
MULTIPLIERS = (1, 2, 4)
PROFILE_CSV_BATCH_ROWS = 10_000  # see build_steps_child
# The default (5,000 stays) is one chunk at these cohort sizes; 250 makes the profiled build show
# whether the features step's memory stays bounded once the cohort spans many chunks.
PROFILE_STATISTICS_CHUNK_STAYS = 250
# Likewise for the labevents / vitals rows buffered before a spill to Parquet (default 500,000, more
# than these cohorts keep): 10,000 makes every size spill several times.
PROFILE_SPILL_ROWS = 10_000
# And for the rows per row group of the store's feature / diagnosis tables (default 16,384, more than
# these cohorts hold): 1,024 keeps the write buffer below the smallest cohort.
PROFILE_TABLE_ROW_GROUP_ROWS = 1_024
MIN_STEP_SECONDS = 1.0
# One process per `ecgkt synth` / `ecgkt build`: their worker pools start workers from a fork server,
# which the command never reaps, so `os.wait4` would miss the workers' CPU time (checked: a pool
# burning 2 CPU s reported 0.06 s). Worker scaling is measured by build_wfdb_speed.py / synth_speed.py.
CHILD_WORKERS = 1  # build steps shorter than this at the largest size are too short to judge


def train_child(store: Path, out: Path, result_path: Path, epochs: int, threads: int) -> None:
    """Runs INSIDE the child: `epochs` epochs of the signal-only baseline, each epoch timed by a callback."""
    import resource

    import lightning as L

    from ecgkt.config import load_config
    from ecgkt.train.stages import run_baseline

    def cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    @dataclass
    class EpochClock(L.Callback):
        """Marks the start of an epoch, the start and end of its validation, and its end.

        Lightning 2 runs the validation loop before `on_train_epoch_end`, so train = start → validation
        start, validation = validation start → end, epoch = start → train-epoch end (incl. checkpoints).
        """

        epochs: list[dict[str, float]] = field(default_factory=list)
        marks: dict[str, tuple[float, float]] = field(default_factory=dict)
        train_batches: int = 0

        def _mark(self, name: str) -> None:
            self.marks[name] = (time.perf_counter(), cpu_now())

        def _span(self, start: str, end: str) -> tuple[float, float]:
            (w0, c0), (w1, c1) = self.marks[start], self.marks[end]
            return w1 - w0, c1 - c0

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.marks.clear()
            self._mark("start")

        def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            self._mark("val_start")

        def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            self._mark("val_end")

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self._mark("end")
            self.train_batches = int(trainer.num_training_batches)
            epoch_wall, epoch_cpu = self._span("start", "end")
            entry = {"epoch": float(trainer.current_epoch), "wall_s": epoch_wall, "cpu_s": epoch_cpu}
            if "val_start" in self.marks and "val_end" in self.marks:
                entry["train_wall_s"], entry["train_cpu_s"] = self._span("start", "val_start")
                entry["val_wall_s"], entry["val_cpu_s"] = self._span("val_start", "val_end")
            self.epochs.append(entry)

    process_started = time.perf_counter()
    overrides = {
        "seed": 0,
        "trainer": {"cpu_threads": threads, "progress_bar": False},
        "baseline": {"optim": {"max_epochs": epochs}},
        "evaluation": {"bootstrap_resamples": 10, "paired_resamples": 10},  # scoring after fit is not timed
    }
    config = load_config("cpu", overrides=overrides)
    clock = EpochClock()
    stage = run_baseline("signal", config, store, out, extra_callbacks=[clock])
    if len(clock.epochs) != epochs:
        raise ScalingError(f"{out}: expected {epochs} timed epochs, got {len(clock.epochs)}")
    n_records = stage.metrics["n_records"]
    payload = {
        "epochs": clock.epochs,
        "n_train": int(n_records["train"]),
        "n_val": int(n_records["val"]),
        "train_batches": clock.train_batches,
        "batch_size": config.data.batch_size,
        "n_labels": len(json.loads((store / "manifest.json").read_text())["diagnosis_labels"]),
        "child_seconds": time.perf_counter() - process_started,
        "threads": threads,
    }
    write_text_atomically(result_path, json.dumps(payload, indent=2) + "\n")


# ---- the three measured steps ----------------------------------------------------------------------


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ecgkt_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ecgkt.cli", *args]


def synth_step(patients: int, root: Path, logs: Path, workers: int) -> dict[str, Any]:
    run = run_child(
        ecgkt_command(
            "synth", "--out", str(root), "--patients", str(patients), "--seed", "0", "--workers", str(workers)
        ),
        logs / f"synth-{patients}.log",
        f"ecgkt synth --patients {patients}",
    )
    return {"patients": patients, "run": asdict(run), "cpu_s": run.cpu_s}


def build_once(root: Path, store: Path, logs: Path, workers: int, label: str, attempt: int) -> dict[str, Any]:
    """One `ecgkt build` of `root` into `store` (replaced); its measured run and its build report."""
    shutil.rmtree(store, ignore_errors=True)
    command = ecgkt_command(
        "build", "--synthetic", str(root), "--out", str(store), "--workers", str(workers), "--seed", "0", "--quiet"
    )
    run = run_child(command, logs / f"build-{label}-{attempt}.log", f"ecgkt build ({label}, run {attempt + 1})")
    report_path = store / "build_report.json"
    if not report_path.is_file():
        raise ScalingError(f"{report_path}: the build finished without its report")
    return {"run": asdict(run), "report": json.loads(report_path.read_text())}


def summarise_builds(attempts: list[dict[str, Any]], store: Path) -> dict[str, Any]:
    """Times: the minimum over runs (the least-disturbed run: contention only ever adds time); memory:
    the maximum (the conservative figure; it hardly varies). Steps: the minimum per step."""
    counts = attempts[-1]["report"]["counts"]
    records = int(counts["ECGs in the store"])
    if records <= 0:
        raise ScalingError(f"{store / 'build_report.json'}: the store has no records")
    runs = [a["run"] for a in attempts]
    steps: dict[str, float] = {}
    for a in attempts:
        for name, seconds in a["report"].get("timings_seconds", {}).items():
            steps[name] = min(steps.get(name, float("inf")), float(seconds))
    return {
        "records": records,
        "patients_in_store": int(counts["patients"]),
        "diagnosis_labels": int(counts["diagnosis labels"]),
        "signals_mib": (store / "signals.npy").stat().st_size / 2**20,
        "wall_s": least_disturbed([r["wall_s"] for r in runs]),
        "cpu_s": least_disturbed([r["user_s"] + r["sys_s"] for r in runs]),
        "cpu_s_all": [r["user_s"] + r["sys_s"] for r in runs],
        "wall_s_all": [r["wall_s"] for r in runs],
        "maxrss_mib": max(r["maxrss_mib"] for r in runs),
        "peak_anon_mib": max(r["peak_anon_mib"] for r in runs),
        "peak_file_mib": max(r["peak_file_mib"] for r in runs),
        "step_seconds": steps,
        "attempts": [{"run": a["run"], "report_seconds": a["report"]["seconds"]} for a in attempts],
    }


def build_steps_child(root: Path, store: Path, result_path: Path) -> None:
    """Runs INSIDE a child: `build_store` with the CPU time and anonymous-memory peak of every step.

    The build already names and times its steps (wall clock) through `BuildProgress.step`; a subclass
    swapped in for this process adds the process's CPU time and the peak `RssAnon` (sampled every
    20 ms) per step, so a super-linear step or a per-record memory term can be located. Behaviour is
    unchanged (the subclass only observes) except for one control: CSVs are streamed in batches of
    PROFILE_CSV_BATCH_ROWS rows. With the default 100,000 the synthetic tables fit in one or two
    batches at these sizes, so the batch itself would grow with the cohort and pass for a per-record
    cost; with small batches every size streams full batches and what grows is what is retained.
    """
    import contextlib
    from collections.abc import Iterator

    from ecgkt.cohort import pipeline
    from ecgkt.cohort.config import BuildConfig
    from ecgkt.cohort.progress import BuildProgress
    from ecgkt.mimic.layout import MimicFolders

    monitor = _SelfAnonMonitor()
    monitor.start()
    imports = {"cpu_s": time.process_time(), "anon_mib": monitor.current_mib()}
    steps: dict[str, dict[str, float]] = {}

    class ProfiledProgress(BuildProgress):
        @contextlib.contextmanager
        def step(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
            cpu_before, anon_before = time.process_time(), monitor.reset()
            with super().step(description, total) as advance:
                yield advance
            steps[description] = {
                "cpu_s": time.process_time() - cpu_before,
                "anon_before_mib": anon_before,
                "peak_anon_mib": monitor.peak_mib,
                "anon_after_mib": monitor.current_mib(),
            }

    pipeline.BuildProgress = ProfiledProgress  # type: ignore[misc]
    config = BuildConfig(
        workers=1,
        csv_batch_rows=PROFILE_CSV_BATCH_ROWS,
        statistics_chunk_stays=PROFILE_STATISTICS_CHUNK_STAYS,
        spill_rows=PROFILE_SPILL_ROWS,
        table_row_group_rows=PROFILE_TABLE_ROW_GROUP_ROWS,
    )
    pipeline.build_store(MimicFolders.from_synthetic_root(root), store, config, overwrite=True)
    monitor.stop.set()
    payload = {
        "csv_batch_rows": PROFILE_CSV_BATCH_ROWS,
        "statistics_chunk_stays": PROFILE_STATISTICS_CHUNK_STAYS,
        "spill_rows": PROFILE_SPILL_ROWS,
        "table_row_group_rows": PROFILE_TABLE_ROW_GROUP_ROWS,
        "imports": imports,
        "steps": steps,
        "total_cpu_s": time.process_time(),
        "overall_peak_anon_mib": monitor.overall_peak_mib,
    }
    write_text_atomically(result_path, json.dumps(payload, indent=2) + "\n")


class _SelfAnonMonitor(threading.Thread):
    """This process's RssAnon every 20 ms: the peak since the last `reset()` and overall (MiB)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_mib = 0.0
        self.overall_peak_mib = 0.0

    @staticmethod
    def current_mib() -> float:
        status = parse_proc_status(Path("/proc/self/status").read_text())
        return status.get("RssAnon", 0) / KIB_PER_MIB

    def reset(self) -> float:
        self.peak_mib = self.current_mib()
        return self.peak_mib

    def run(self) -> None:
        while not self.stop.is_set():
            value = self.current_mib()
            self.peak_mib = max(self.peak_mib, value)
            self.overall_peak_mib = max(self.overall_peak_mib, value)
            self.stop.wait(0.02)


def profile_build_steps(root: Path, store: Path, logs: Path, label: str) -> dict[str, Any]:
    """One extra build of `root` in a child that reports each step's CPU time and anonymous peak."""
    result_path = store.with_suffix(".steps.json")
    command = [sys.executable, str(Path(__file__).resolve()), "--build-steps-child", "--root", str(root)]
    command += ["--store", str(store), "--steps-result", str(result_path)]
    run = run_child(command, logs / f"build-steps-{label}.log", f"profiled build ({label})")
    if not result_path.is_file():
        raise ScalingError(f"{result_path}: the profiled build wrote no result")
    shutil.rmtree(store, ignore_errors=True)
    return {**json.loads(result_path.read_text()), "run": asdict(run)}


def import_reference(logs: Path) -> dict[str, Any]:
    """CPU time of a child that only imports what `ecgkt build` imports: the build's fixed start-up cost.

    `simple_icd_10_cm` is imported lazily by the build (titles of the kept codes) and parses its
    whole ICD-10-CM catalogue on import, so it is part of every build's fixed cost.
    """
    code = "import ecgkt.cli, ecgkt.cohort.commands, ecgkt.cohort.pipeline, simple_icd_10_cm"
    runs = [run_child([sys.executable, "-c", code], logs / f"imports-{i}.log", "import reference") for i in range(2)]
    return {"modules": code, "cpu_s": min(r.cpu_s for r in runs), "wall_s": min(r.wall_s for r in runs)}


def train_once(
    store: Path, out: Path, logs: Path, epochs: int, threads: int, label: str, round_: int
) -> dict[str, Any]:
    """One training child (`epochs` epochs) on `store`; its per-epoch timings and its measured run."""
    result_path = out.with_suffix(".result.json")
    command = [sys.executable, str(Path(__file__).resolve()), "--train-child", "--store", str(store)]
    command += ["--train-out", str(out), "--train-result", str(result_path)]
    command += ["--epochs", str(epochs), "--threads", str(threads)]
    run = run_child(
        command,
        logs / f"train-{label}-{round_}.log",
        f"training child ({label}, round {round_ + 1})",
        child_env(threads),
    )
    if not result_path.is_file():
        raise ScalingError(f"{result_path}: the training child wrote no result")
    return {**json.loads(result_path.read_text()), "run": asdict(run)}


def summarise_training(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Every timed epoch of every round; per-epoch figures: the minimum (the least-disturbed epoch)."""
    epochs = [{**e, "round": float(r)} for r, child in enumerate(rounds) for e in child["epochs"]]
    steady = {
        key: least_disturbed([e[key] for e in epochs])
        for key in ("wall_s", "cpu_s", "train_wall_s", "train_cpu_s", "val_wall_s", "val_cpu_s")
        if all(key in e for e in epochs)
    }
    last, runs = rounds[-1], [child["run"] for child in rounds]
    return {
        "n_train": last["n_train"],
        "n_val": last["n_val"],
        "n_labels": last["n_labels"],
        "batch_size": last["batch_size"],
        "train_samples_per_epoch": last["train_batches"] * last["batch_size"],  # drop_last: full batches
        "epochs": epochs,
        "steady": steady,
        "maxrss_mib": max(r["maxrss_mib"] for r in runs),
        "peak_anon_mib": max(r["peak_anon_mib"] for r in runs),
        "peak_file_mib": max(r["peak_file_mib"] for r in runs),
        "rounds": [{"run": child["run"], "child_seconds": child["child_seconds"]} for child in rounds],
    }


# ---- machine ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# ---- driver ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    base = args.base
    sizes = [base * m for m in MULTIPLIERS]
    result: dict[str, Any] = {
        "command": "benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpu": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": version("torch"),
            "lightning": version("lightning"),
            "polars": version("polars"),
            "load_average_start": load_average(),
        },
        "settings": {
            "base_patients": base,
            "multipliers": list(MULTIPLIERS),
            "epochs": args.epochs,
            "train_threads": args.threads,
            "build_workers": CHILD_WORKERS,
            "build_repeats": args.build_repeats,
            "train_rounds": args.train_rounds,
            "synth_workers": CHILD_WORKERS,
            "preset": "cpu",
            "baseline": "signal",
            "sample_seconds": SAMPLE_SECONDS,
            "linear_tolerance": LINEAR_TOLERANCE,
            "flat_tolerance": FLAT_TOLERANCE,
            "project_records": PROJECT_RECORDS,
        },
        "sizes": [],
    }
    started = time.perf_counter()
    parent = Path(args.workdir) if args.workdir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ecgkt-scaling-", dir=parent))
    logs = workdir / "logs"
    logs.mkdir()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    labels = [f"{m}x" for m in MULTIPLIERS]
    roots = {label: workdir / f"synth-{label}" for label in labels}
    stores = {label: workdir / f"store-{label}" for label in labels}
    # Repeats go round-robin over the sizes (1×, 2×, 4×, 1×, ...), so a slow drift of the machine's
    # state (other jobs starting or ending) touches every size alike instead of biasing one of them.
    try:
        with Progress(*columns, TimeElapsedColumn()) as progress:
            steps = 1 + len(sizes) * (2 + args.build_repeats + args.train_rounds)
            task = progress.add_task("scaling", total=steps)

            def step(description: str) -> None:
                progress.update(task, description=description)

            step("start-up reference: importing the build's modules")
            result["import_reference"] = import_reference(logs)
            progress.advance(task)
            synths: dict[str, dict[str, Any]] = {}
            for label, patients in zip(labels, sizes, strict=True):
                step(f"{label}: ecgkt synth --patients {patients}")
                synths[label] = synth_step(patients, roots[label], logs, CHILD_WORKERS)
                progress.advance(task)
            attempts: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
            for attempt in range(args.build_repeats):
                for label in labels:
                    step(f"{label}: ecgkt build, run {attempt + 1}/{args.build_repeats}")
                    attempts[label].append(build_once(roots[label], stores[label], logs, CHILD_WORKERS, label, attempt))
                    progress.advance(task)
            builds = {label: summarise_builds(attempts[label], stores[label]) for label in labels}
            for label in labels:
                step(f"{label}: profiled build (CPU and memory per step)")
                builds[label]["steps"] = profile_build_steps(roots[label], workdir / f"profiled-{label}", logs, label)
                progress.advance(task)
            if not args.keep:
                for root in roots.values():
                    shutil.rmtree(root, ignore_errors=True)  # the raw cohorts are no longer needed
            trained: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
            for round_ in range(args.train_rounds):
                for label in labels:
                    step(f"{label}: {args.epochs} training epochs, round {round_ + 1}/{args.train_rounds}")
                    out = workdir / f"train-{label}-{round_}"
                    trained[label].append(
                        train_once(stores[label], out, logs, args.epochs, args.threads, label, round_)
                    )
                    progress.advance(task)
            for multiplier, patients, label in zip(MULTIPLIERS, sizes, labels, strict=True):
                entry = {
                    "multiplier": multiplier,
                    "patients": patients,
                    "synth": synths[label],
                    "build": builds[label],
                    "train": summarise_training(trained[label]),
                }
                result["sizes"].append(entry)
                progress.console.print(summary_line(entry))
    finally:
        if args.keep:
            print(f"kept the data in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["load_average_end"] = load_average()
    result["wall_seconds"] = time.perf_counter() - started
    result["analysis"] = analyse(result["sizes"])
    return result


def summary_line(entry: dict[str, Any]) -> str:
    build, train = entry["build"], entry["train"]
    return (
        f"{entry['multiplier']}×: {entry['patients']} patients, {build['records']} records; "
        f"build {build['wall_s']:.1f} s wall / {build['cpu_s']:.1f} s CPU, anon peak {build['peak_anon_mib']:.0f} MiB; "
        f"epoch {train['steady']['wall_s']:.1f} s wall / {train['steady']['cpu_s']:.1f} s CPU, "
        f"anon peak {train['peak_anon_mib']:.0f} MiB"
    )


def analyse(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Linearity of every cost and flatness of every memory peak, against records (or samples)."""
    records = [float(s["build"]["records"]) for s in sizes]
    samples = [float(s["train"]["train_samples_per_epoch"]) for s in sizes]

    def column(get: Callable[[dict[str, Any]], float]) -> list[float]:
        return [float(get(s)) for s in sizes]

    analysis: dict[str, Any] = {
        "synth_cpu": linearity(records, column(lambda s: s["synth"]["cpu_s"]), "record"),
        "build_wall": linearity(records, column(lambda s: s["build"]["wall_s"]), "record"),
        "build_cpu": linearity(records, column(lambda s: s["build"]["cpu_s"]), "record"),
        "build_peak_anon": flatness(records, column(lambda s: s["build"]["peak_anon_mib"])),
        "build_peak_rss": flatness(records, column(lambda s: s["build"]["maxrss_mib"]), project_to=None),
        "train_epoch_wall": linearity(samples, column(lambda s: s["train"]["steady"]["wall_s"]), "sample"),
        "train_epoch_cpu": linearity(samples, column(lambda s: s["train"]["steady"]["cpu_s"]), "sample"),
        "train_peak_anon": flatness(records, column(lambda s: s["train"]["peak_anon_mib"])),
        "train_peak_rss": flatness(records, column(lambda s: s["train"]["maxrss_mib"]), project_to=None),
    }
    if all("train_cpu_s" in s["train"]["steady"] for s in sizes):
        analysis["train_part_cpu"] = linearity(samples, column(lambda s: s["train"]["steady"]["train_cpu_s"]), "sample")
    step_names = list(sizes[0]["build"]["steps"]["steps"])
    analysis["build_steps"] = {}
    for name in step_names:
        cpu = [float(s["build"]["steps"]["steps"][name]["cpu_s"]) for s in sizes]
        peaks = [float(s["build"]["steps"]["steps"][name]["peak_anon_mib"]) for s in sizes]
        timing = (
            linearity(records, cpu, "record")
            if cpu[-1] >= MIN_STEP_SECONDS
            else {"verdict": f"too short to judge (< {MIN_STEP_SECONDS:g} CPU s at the largest size)"}
        )
        analysis["build_steps"][name] = {"cpu": timing, "peak_anon": flatness(records, peaks)}
    if analysis["build_steps"]:
        steepest = max(analysis["build_steps"], key=lambda n: analysis["build_steps"][n]["peak_anon"]["kib_per_record"])
        analysis["build_steepest_step"] = {"step": steepest, **analysis["build_steps"][steepest]["peak_anon"]}
    return analysis


# ---- report ----------------------------------------------------------------------------------------


def _ratio(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values[1:])


def _header(result: dict[str, Any]) -> list[str]:
    machine, settings = result["machine"], result["settings"]
    return [
        "# Scaling: build time and training time per epoch at 1×, 2×, 4× the cohort",
        "",
        f"Produced by `{result['command'].strip()}` in one run of {result['wall_seconds'] / 60:.1f} min (method in",
        "the script's docstring). Every step ran in a fresh child process: time and CPU from `os.wait4`, memory",
        f"peaks sampled from `/proc/<pid>/status` every {settings['sample_seconds']} s.",
        "",
        f"- Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs shared with other jobs; "
        f"1-min load average {machine['load_average_start'][0]} at the start, "
        f"{machine['load_average_end'][0]} at the end; Python {machine['python']}, torch {machine['torch']}, "
        f"lightning {machine['lightning']}, polars {machine['polars']}.",
        f"- Synth: `ecgkt synth --seed 0 --workers {settings['synth_workers']}`. Build: `ecgkt build --synthetic "
        f"ROOT --workers {settings['build_workers']}`, {settings['build_repeats']} run(s) per size (times: the "
        "minimum, memory: the maximum). Training: signal-only baseline (`run_baseline`, what `ecgkt "
        f"train-baseline signal` runs), `{settings['preset']}` preset, {settings['epochs']} epochs, "
        f"{settings['train_threads']} intra-op thread(s), 0 loader workers, {settings['train_rounds']} training "
        "child(ren) per size; the epoch figures are the minimum over all epochs (the least-disturbed one). Runs of "
        "the build and of training go round-robin over the sizes, so a drift of the machine's load touches all "
        "sizes alike.",
        "- **CPU time is the robust figure** on this shared machine: wall time also contains the time the",
        "  process waited for a core while other jobs ran (*CPU share* = CPU s ÷ wall s; 1.0 = never waited).",
        "  CPU time is not immune either (a shared core runs with colder caches): the per-epoch and per-repeat",
        "  values below show its spread, which bounds how precisely linearity can be judged here.",
        "",
    ]


def _build_section(result: dict[str, Any], labels: list[str]) -> list[str]:
    sizes, analysis = result["sizes"], result["analysis"]
    later = " / ".join(labels[1:])
    lines = [
        "## Build",
        "",
        "| size | patients | records | synth CPU s | build wall s | build CPU s | CPU share | CPU ms / record | "
        "peak RSS MiB | peak anon MiB | peak file-backed MiB | signals.npy MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in zip(labels, sizes, strict=True):
        b = s["build"]
        lines.append(
            f"| {label} | {s['patients']:,} | {b['records']:,} | {s['synth']['cpu_s']:.1f} | {b['wall_s']:.1f} | "
            f"{b['cpu_s']:.1f} | {b['cpu_s'] / b['wall_s']:.2f} | {1000 * b['cpu_s'] / b['records']:.2f} | "
            f"{b['maxrss_mib']:.0f} | {b['peak_anon_mib']:.0f} | {b['peak_file_mib']:.0f} | {b['signals_mib']:.0f} |"
        )
    fit = analysis["build_cpu"]["fit"]
    reference = result["import_reference"]
    repeats = "; ".join(
        f"{label}: " + ", ".join(f"{c:.1f}" for c in s["build"]["cpu_s_all"])
        for label, s in zip(labels, sizes, strict=True)
    )
    lines += [
        "",
        f"Ratios ({later} vs 1×): per-record build CPU {_ratio(analysis['build_cpu']['per_unit_ratio'])}, "
        f"per-record build wall {_ratio(analysis['build_wall']['per_unit_ratio'])}. Per-record costs fall with size",
        f"because of a fixed start-up cost: the least-squares intercept is {fit['intercept']:.1f} CPU s, and a child "
        f"that only imports the build's modules (`{reference['modules']}`) costs {reference['cpu_s']:.1f} CPU s. "
        f"The marginal cost is {1000 * fit['slope']:.2f} CPU ms per record.",
        f"Build CPU s of every run: {repeats}.",
        "",
    ]
    return lines


def _train_section(result: dict[str, Any], labels: list[str]) -> list[str]:
    sizes, analysis = result["sizes"], result["analysis"]
    later = " / ".join(labels[1:])
    lines = [
        "## Training (one epoch)",
        "",
        "| size | train samples / epoch | val records | labels | epoch wall s | epoch CPU s | CPU share | "
        "train part CPU s | val part CPU s | CPU ms / sample | wall ms / sample | "
        "peak RSS MiB | peak anon MiB | peak file-backed MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in zip(labels, sizes, strict=True):
        t, steady = s["train"], s["train"]["steady"]
        n = t["train_samples_per_epoch"]
        lines.append(
            f"| {label} | {n:,} | {t['n_val']:,} | {t['n_labels']} | {steady['wall_s']:.1f} | {steady['cpu_s']:.1f} | "
            f"{steady['cpu_s'] / steady['wall_s']:.2f} | {steady.get('train_cpu_s', float('nan')):.1f} | "
            f"{steady.get('val_cpu_s', float('nan')):.1f} | {1000 * steady['cpu_s'] / n:.2f} | "
            f"{1000 * steady['wall_s'] / n:.2f} | "
            f"{t['maxrss_mib']:.0f} | {t['peak_anon_mib']:.0f} | {t['peak_file_mib']:.0f} |"
        )
    lines += [
        "",
        f"Ratios ({later} vs 1×): per-sample epoch CPU {_ratio(analysis['train_epoch_cpu']['per_unit_ratio'])}, "
        f"per-sample epoch wall {_ratio(analysis['train_epoch_wall']['per_unit_ratio'])}.",
        "CPU s (wall s) of every epoch, rounds separated by `|`:",
        "",
    ]
    for label, s in zip(labels, sizes, strict=True):
        rounds: dict[float, list[str]] = {}
        for e in s["train"]["epochs"]:
            rounds.setdefault(e["round"], []).append(f"{e['cpu_s']:.1f} ({e['wall_s']:.1f})")
        lines.append(f"- {label}: " + " | ".join(", ".join(epochs) for epochs in rounds.values()))
    lines.append("")
    return lines


def _verdict_section(result: dict[str, Any]) -> list[str]:
    analysis, settings = result["analysis"], result["settings"]
    lines = [
        "## Verdicts (computed from the numbers above)",
        "",
        "Time: the marginal cost per record (per training sample) between consecutive sizes, later vs first;",
        f"'linear' when it moves ≤ {100 * settings['linear_tolerance']:.0f} %. Memory: 'flat' when the peak moves",
        f"≤ {100 * settings['flat_tolerance']:.0f} % of its 1× value from 1× to 4×; the fitted per-record slope is",
        f"extrapolated to {settings['project_records']:,} records (issue 7's cohort size).",
        "",
        "| cost | verdict | least-squares fit | marginal cost, 1×→2× → 2×→4× |",
        "|---|---|---|---|",
    ]
    time_rows = [
        ("build CPU time", "build_cpu", "record"),
        ("build wall time", "build_wall", "record"),
        ("epoch CPU time", "train_epoch_cpu", "sample"),
        ("epoch wall time", "train_epoch_wall", "sample"),
        ("epoch CPU time, training part only", "train_part_cpu", "sample"),
        ("synth CPU time (context)", "synth_cpu", "record"),
    ]
    for title, key, unit in time_rows:
        if key not in analysis:
            continue
        a, fit = analysis[key], analysis[key]["fit"]
        marginal = " → ".join(f"{1000 * m:.2f}" for m in a["marginal"])
        lines.append(
            f"| {title} | {a['verdict']} | {1000 * fit['slope']:.2f} ms/{unit} + {fit['intercept']:.1f} s, "
            f"R² {fit['r_squared']:.4f} | {marginal} ms/{unit} |"
        )
    lines += ["", "| memory peak | verdict |", "|---|---|"]
    if "build_steepest_step" in analysis:
        steepest = analysis["build_steepest_step"]
        lines.append(
            f'| build, anonymous, step "{steepest["step"]}" (steepest per-record slope) | {steepest["verdict"]} |'
        )
    for title, key in (
        ("build, anonymous", "build_peak_anon"),
        ("build, RSS (incl. file pages)", "build_peak_rss"),
        ("training, anonymous", "train_peak_anon"),
        ("training, RSS (incl. file pages)", "train_peak_rss"),
    ):
        lines.append(f"| {title} | {analysis[key]['verdict']} |")
    return [*lines, ""]


def _steps_section(result: dict[str, Any], labels: list[str]) -> list[str]:
    sizes, steps = result["sizes"], result["analysis"].get("build_steps", {})
    if not steps:
        return []
    project = result["settings"]["project_records"]
    sep = " / ".join(labels)
    lines = [
        "## Build steps (one extra, profiled build per size)",
        "",
        "CPU time and peak anonymous memory of each step of `build_store`, measured inside the build process",
        "(a `BuildProgress` subclass that only observes; `RssAnon` sampled every 20 ms). *Start-up* is",
        "everything before the first step: interpreter, imports. A step's peak includes what earlier steps",
        "still hold; the rise shows what the step itself adds. Anonymous memory includes what the allocators",
        "keep after a free (returned to the system with a delay), so a transient peak is memory the machine needs.",
        f"This build streams CSVs in {PROFILE_CSV_BATCH_ROWS:,}-row batches, computes features and lab values in",
        f"chunks of {PROFILE_STATISTICS_CHUNK_STAYS} stays (`statistics_chunk_stays`; default 5,000), spills the",
        f"kept labevents and vitals rows to Parquet every {PROFILE_SPILL_ROWS:,} rows (`spill_rows`; default",
        f"500,000), and writes the feature and diagnosis tables {PROFILE_TABLE_ROW_GROUP_ROWS:,} rows at a time",
        "(`table_row_group_rows`; default 16,384), so every bound is exercised at these cohort sizes.",
        "",
        f"| step | CPU s ({sep}) | CPU verdict | peak anon MiB (rise during the step) ({sep}) | "
        "peak anon KiB / record (fit) | "
        f"fitted peak at {project:,} records |",
        "|---|---|---|---|---:|---:|",
    ]
    imports = [s["build"]["steps"]["imports"] for s in sizes]
    lines.append(
        "| start-up | "
        + " / ".join(f"{i['cpu_s']:.2f}" for i in imports)
        + " | – | "
        + " / ".join(f"{i['anon_mib']:.0f}" for i in imports)
        + " | – | – |"
    )
    for name, a in steps.items():
        cpu = " / ".join(f"{s['build']['steps']['steps'][name]['cpu_s']:.2f}" for s in sizes)
        peaks = " / ".join(
            f"{m['peak_anon_mib']:.0f} ({m['peak_anon_mib'] - m['anon_before_mib']:+.0f})"
            for m in (s["build"]["steps"]["steps"][name] for s in sizes)
        )
        memory = a["peak_anon"]
        projected = memory["projected_mib"] / KIB_PER_MIB
        lines.append(
            f"| {name} | {cpu} | {a['cpu']['verdict']} | {peaks} | {memory['kib_per_record']:+.1f} | "
            f"{projected:.1f} GiB |"
        )
    totals = " / ".join(f"{s['build']['steps']['total_cpu_s']:.2f}" for s in sizes)
    lines += ["", f"Total CPU s of the profiled builds ({sep}): {totals}.", ""]
    return lines


def render_markdown(result: dict[str, Any]) -> str:
    labels = [f"{s['multiplier']}×" for s in result["sizes"]]
    lines = [
        *_header(result),
        *_build_section(result, labels),
        *_train_section(result, labels),
        *_verdict_section(result),
        *_steps_section(result, labels),
        "Memory columns: *peak RSS* is `ru_maxrss`; *peak anon* the largest sampled `RssAnon` (the process's",
        "own heap: what must stay flat); *peak file-backed* the largest `RssFile` (pages of mapped files —",
        "`signals.npy`, shared libraries — page cache that follows the data touched, reclaimable by the kernel).",
        "",
    ]
    return "\n".join(lines)


def rerender() -> dict[str, Any]:
    """The last run's measurements with the current analysis and report code (nothing is re-measured)."""
    path = RESULTS / "scaling.json"
    if not path.is_file():
        raise ScalingError(f"{path}: no results to re-render; run the study first")
    result: dict[str, Any] = json.loads(path.read_text())
    result["analysis"] = analyse(result["sizes"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", type=int, default=600, help="patients at 1× (default 600; sizes are 1×, 2×, 4×)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --base 60, results not written")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per size (the minimum is reported)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of training (shared machine: 1)")
    parser.add_argument("--build-repeats", type=int, default=3, help="builds per size (min time, max memory)")
    parser.add_argument("--train-rounds", type=int, default=2, help="training children per size (round-robin)")
    parser.add_argument("--workdir", type=Path, default=None, help="parent folder for the temporary data")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic cohorts, stores and logs")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results files alone")
    parser.add_argument(
        "--rerender", action="store_true", help="recompute the verdicts and the .md from results/scaling.json (no runs)"
    )
    parser.add_argument("--train-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--train-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--train-result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-steps-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_child:
        train_child(args.store, args.train_out, args.train_result, args.epochs, args.threads)
        return
    if args.build_steps_child:
        build_steps_child(args.root, args.store, args.steps_result)
        return
    counts = (args.base, args.epochs, args.threads, args.build_repeats, args.train_rounds)
    if min(counts) < 1:
        parser.error("--base, --epochs, --threads, --build-repeats and --train-rounds must be ≥ 1")
    if args.quick:
        args.base = min(args.base, 60)
        args.build_repeats = 1
        args.train_rounds = 1
        args.no_write = True
    try:
        result = rerender() if args.rerender else run(args)
    except ScalingError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    analysis = result["analysis"]
    for key in ("build_cpu", "build_wall", "build_peak_anon", "train_epoch_cpu", "train_epoch_wall", "train_peak_anon"):
        print(f"{key}: {analysis[key]['verdict']}")
    if args.no_write:
        print(render_markdown(result))
        return
    RESULTS.mkdir(exist_ok=True)
    write_text_atomically(RESULTS / "scaling.json", json.dumps(result, indent=2) + "\n")
    write_text_atomically(RESULTS / "scaling.md", render_markdown(result))
    print(f"wrote {RESULTS / 'scaling.md'} and {RESULTS / 'scaling.json'}")


if __name__ == "__main__":
    main()
