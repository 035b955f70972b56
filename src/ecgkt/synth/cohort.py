"""`generate_cohort`: simulate, write every MIMIC file and the ground truth, atomically.

Output goes to `OUT.partial-<random>` next to `OUT` and is renamed into place only when complete, so
an interrupted run never leaves a half-written cohort where the builder would read it. ECG records
are rendered in worker processes (spawned, so nothing of the parent's Polars state is inherited),
each record from its own random stream, so the files do not depend on the number of workers.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ecgkt.synth.ecg_params import MachineMeasurements
from ecgkt.synth.errors import InvalidRequestError, OutputExistsError, OutputNotWritableError
from ecgkt.synth.physiology import REPORTED_STATES
from ecgkt.synth.records import RecordJob, render_and_write

MAX_PATIENTS = 200_000  # MIMIC-IV-ECG has ~160k patients; beyond this the job list outgrows memory
BYTES_PER_PATIENT = 3.6 * 121_000 + 25_000  # ~3.6 ECGs of 120 kB each, plus table rows
MAX_WORKERS = 256
MAX_SEED = 2**63 - 1
CHUNK_SIZE = 32


@dataclass
class CohortSummary:
    """What was generated, for the CLI summary and for callers."""

    out: Path
    seed: int
    patients: int
    visits: int
    admissions: int
    ecgs: int
    ecgs_in_window: int
    ecgs_later_in_stay: int
    ecgs_outside_stays: int
    labevents_rows: int
    vitalsign_rows: int
    diagnosis_rows: int
    workers: int
    seconds: float
    render_seconds: float  # wall time of the rendering phase (table and ground-truth writing overlap it)
    prevalence: dict[str, float] = field(default_factory=dict)  # share of visits with each latent state

    @property
    def records_per_second(self) -> float:
        return self.ecgs / self.seconds if self.seconds > 0 else float("nan")


def validate_request(out: Path, n_patients: int, seed: int, workers: int | None, overwrite: bool) -> int:
    """Check sizes and the output location before doing any work; return the worker count to use."""
    if isinstance(n_patients, bool) or not isinstance(n_patients, int):
        raise InvalidRequestError(f"--patients must be a whole number, got {n_patients!r}")
    if n_patients < 1:
        raise InvalidRequestError(f"--patients must be at least 1, got {n_patients}")
    if n_patients > MAX_PATIENTS:
        raise InvalidRequestError(f"--patients {n_patients} is larger than the supported maximum of {MAX_PATIENTS:,}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidRequestError(f"--seed must be an integer between 0 and {MAX_SEED}, got {seed!r}")
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InvalidRequestError(f"--workers must be between 1 and {MAX_WORKERS}, got {workers!r}")

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputNotWritableError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")
    parent = out.absolute().parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"{out}: cannot create or write in {existing}")
    needed = n_patients * BYTES_PER_PATIENT
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise OutputNotWritableError(f"{out}: {n_patients:,} patients need about {_size(needed)}, "
                                     f"only {_size(free)} free on that disk")
    return workers


def _size(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.0f} kB"


@contextmanager
def _atomic_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success move it to `out` (replacing it if allowed)."""
    out = Path(out).absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.parent / f"{out.name}.partial-{secrets.token_hex(4)}"
        partial.mkdir()
    except OSError as error:
        raise OutputNotWritableError(f"{out}: cannot create the output folder ({error.strerror})") from error
    try:
        yield partial
        if out.exists():
            if any(out.iterdir()) and not overwrite:
                raise OutputExistsError(f"{out}: folder appeared and is not empty (use --overwrite to replace it)")
            old = out.parent / f"{out.name}.old-{secrets.token_hex(4)}"
            out.rename(old)
            partial.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _chunks(jobs: Sequence[RecordJob], size: int) -> Iterator[Sequence[RecordJob]]:
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def render_records(jobs: Sequence[RecordJob], root: Path, seed: int, workers: int, progress: Progress | None,
                   while_rendering: Callable[[], None] | None = None) -> list[MachineMeasurements]:
    """Render and write every record; returns machine measurements in job order.

    `while_rendering` is run in this process after the work has been handed to the workers (or
    before rendering when `workers` is 1), so table writing overlaps with rendering.
    """
    results: dict[int, MachineMeasurements] = {}
    task = progress.add_task("ECG records", total=len(jobs)) if progress is not None else None
    if workers == 1:
        if while_rendering is not None:
            while_rendering()
        for chunk in _chunks(jobs, CHUNK_SIZE):
            results.update(render_and_write(str(root), seed, chunk))
            if progress is not None and task is not None:
                progress.advance(task, len(chunk))
    else:
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending = {pool.submit(render_and_write, str(root), seed, chunk): len(chunk)
                       for chunk in _chunks(jobs, CHUNK_SIZE)}
            if while_rendering is not None:
                while_rendering()
            for done in futures.as_completed(pending):
                results.update(done.result())
                if progress is not None and task is not None:
                    progress.advance(task, pending[done])
    return [results[job.index] for job in jobs]


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False)


def generate_cohort(out: Path, n_patients: int, seed: int, overwrite: bool = False, workers: int | None = None,
                    show_progress: bool = True) -> CohortSummary:
    """Write a synthetic cohort in the MIMIC-IV / -ED / -ECG layouts plus its ground truth to `out`.

    With `workers` > 1, records are rendered in *spawned* processes, so a calling script needs the
    usual `if __name__ == "__main__":` guard (the `ecgkt` command and pytest already have it).
    Raises `InvalidRequestError`, `OutputExistsError` or `OutputNotWritableError` before doing any
    work when the request is unusable.
    """
    from ecgkt.synth.ground_truth import write_ground_truth
    from ecgkt.synth.simulate import simulate
    from ecgkt.synth.tables import machine_measurements_table
    from ecgkt.synth.writer import write_table

    out = Path(out)
    n_workers = validate_request(out, n_patients, seed, workers, overwrite)
    started = time.perf_counter()
    with _atomic_folder(out, overwrite) as partial, _progress(show_progress) as progress:
        step = progress.add_task("latent physiology and tables", total=None)
        sim = simulate(n_patients, seed)
        progress.update(step, total=1, completed=1)
        table_task = progress.add_task("MIMIC tables", total=len(sim.tables) + 1)
        truth_task = progress.add_task("ground truth", total=1)

        def write_tables_and_truth() -> None:
            for relative, frame in sim.tables.items():
                write_table(frame, partial / relative)
                progress.advance(table_task)
            write_ground_truth(sim, partial / "ground_truth")
            progress.advance(truth_task)

        ecg_root = partial / "mimic-iv-ecg"
        render_started = time.perf_counter()
        measurements = render_records(sim.jobs, ecg_root, seed, n_workers, progress,
                                      while_rendering=write_tables_and_truth)
        render_seconds = time.perf_counter() - render_started
        schedule = sim.schedule
        write_table(machine_measurements_table(
            sim.patients.subject_id[schedule.patient], schedule.study_id, schedule.ecg_time, sim.cart_id,
            measurements), ecg_root / "machine_measurements.csv")
        progress.advance(table_task)
    kinds = sim.schedule.kind
    return CohortSummary(
        out=out, seed=seed, patients=sim.patients.n, visits=sim.visits.n, admissions=int(sim.stays.admitted.sum()),
        ecgs=sim.schedule.n, ecgs_in_window=int((kinds == "window").sum()),
        ecgs_later_in_stay=int((kinds == "late").sum()), ecgs_outside_stays=int((kinds == "outside").sum()),
        labevents_rows=sim.tables["mimic-iv/hosp/labevents.csv.gz"].height,
        vitalsign_rows=sim.tables["mimic-iv-ed/ed/vitalsign.csv.gz"].height,
        diagnosis_rows=sim.tables["mimic-iv-ed/ed/diagnosis.csv.gz"].height
        + sim.tables["mimic-iv/hosp/diagnoses_icd.csv.gz"].height,
        workers=n_workers, seconds=time.perf_counter() - started, render_seconds=render_seconds,
        prevalence={name: float(sim.states.flags[name].mean()) for name in REPORTED_STATES},
    )
