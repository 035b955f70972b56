"""WFDB ingestion speed of the cohort builder (records/s) with 1 and 2 worker processes.

Why: the full MIMIC-IV-ECG ED cohort is a few hundred thousand records; issue 3 asks for at least
300 records/s on 2 cores *including* resampling 500 → 100 Hz. The measured path is exactly the
builder's: `ecgkt.cohort.signals.ingest_signals` (chunked, workers write into the memory-mapped
store array and leave progress markers). References timed in the same run, on the same files:
- `np.fromfile` of every `.dat` (I/O + int16 decode only): the floor;
- `wfdb.rdrecord` per record (what reading with the wfdb package alone costs on this machine);
- the per-record split of our single-process path (read vs preprocess).
Files are MIMIC-shaped (12 leads in MIMIC order, 500 Hz, 5000 samples, format 16, gain 200) and
freshly written, so reads come from the page cache (as on a machine with RAM for the hot set).

Run: `.venv/bin/python benchmarks/build_wfdb_speed.py [--records 2000]`; writes
benchmarks/results/build_wfdb_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import wfdb

from ecgkt.cohort.signals import OK, ingest_signals, read_record
from ecgkt.mimic.layout import MIMIC_LEAD_ORDER, wfdb_record_dir
from ecgkt.signals.preprocess import preprocess

RESULTS = Path(__file__).parent / "results"


def write_records(root: Path, n: int, seed: int = 0) -> list[str]:
    """n MIMIC-shaped records with ECG-like content (beats + noise); 1.5 % with a NaN stretch."""
    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500.0
    bases = []
    for k in range(n):
        subject, study = 10_000_000 + k, 40_000_000 + k
        rate = rng.uniform(0.8, 2.0)
        beat = np.exp(-(((t * rate) % 1.0 - 0.3) ** 2) / 0.0005)  # narrow spikes as QRS complexes
        signal = np.stack(
            [rng.uniform(0.3, 1.5) * beat + 0.05 * rng.standard_normal(5000) for _ in MIMIC_LEAD_ORDER], axis=1
        )
        if rng.random() < 0.015:
            signal[1000:1100, 3] = np.nan
        folder = root / wfdb_record_dir(subject, study)
        folder.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(
            str(study),
            fs=500,
            units=["mV"] * 12,
            sig_name=list(MIMIC_LEAD_ORDER),
            p_signal=signal,
            fmt=["16"] * 12,
            adc_gain=[200.0] * 12,
            baseline=[0] * 12,
            comments=[f"<subject_id>: {subject}"],
            write_dir=str(folder),
        )
        bases.append(str(folder / str(study)))
    return bases


def time_builder(bases: list[str], workers: int, folder: Path) -> dict[str, float]:
    """Wall time of ingest_signals into a fresh memmap (pool start-up included), the rate after the
    first chunk came back (start-up excluded), and the CPU seconds the readers used per record —
    the figure that does not depend on how busy a shared machine is."""
    path = folder / f"signals_{workers}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(bases), 12, 1000))
    del array
    progress: list[tuple[float, int]] = []
    started = time.perf_counter()
    markers = ingest_signals(
        bases,
        bases,
        path,
        folder / f"state_{workers}",
        chunk_records=256,
        workers=workers,
        on_records=lambda n: progress.append((time.perf_counter(), n)),
    )
    seconds = time.perf_counter() - started
    statuses = [s for m in markers for s in m["statuses"]]  # type: ignore[attr-defined]
    assert statuses.count(OK) == len(bases), "every benchmark record must be read"
    first_time, first_count = progress[0]
    cpu = sum(float(m["cpu_seconds"]) for m in markers)  # type: ignore[arg-type]
    return {
        "seconds": seconds,
        "records_per_second": len(bases) / seconds,
        "steady_records_per_second": (len(bases) - first_count) / (started + seconds - first_time),
        "cpu_ms_per_record": 1e3 * cpu / len(bases),
    }


def time_references(bases: list[str], sample: int) -> dict[str, float]:
    """Per-record seconds of the reference operations (single process)."""
    subset = bases[:sample]
    started = time.perf_counter()
    for base in subset:
        np.fromfile(base + ".dat", dtype="<i2")
    fromfile = (time.perf_counter() - started) / len(subset)

    started = time.perf_counter()
    for base in subset[: max(20, sample // 10)]:
        wfdb.rdrecord(base)
    rdrecord = (time.perf_counter() - started) / max(20, sample // 10)

    started = time.perf_counter()
    for base in subset:
        read_record(Path(base))
    ours = (time.perf_counter() - started) / len(subset)

    raw = np.fromfile(subset[0] + ".dat", dtype="<i2").reshape(5000, 12).T / 200.0
    started = time.perf_counter()
    for _ in subset:
        preprocess(raw, 500.0)
    prep = (time.perf_counter() - started) / len(subset)
    return {"fromfile": fromfile, "wfdb_rdrecord": rdrecord, "read_record": ours, "preprocess": prep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecgkt-wfdb-") as tmp:
        folder = Path(tmp)
        bases = write_records(folder / "ecg", args.records)
        references = time_references(bases, min(300, args.records))
        timed = {workers: time_builder(bases, workers, folder) for workers in (1, 2)}
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    result = {
        "records": args.records,
        "cpus": cpus,
        "load_average_1min": load,
        "python": platform.python_version(),
        "workers": timed,
        "reference_seconds_per_record": references,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "build_wfdb_speed.json").write_text(json.dumps(result, indent=2))
    ref = references
    capacity = {w: w * 1e3 / timed[w]["cpu_ms_per_record"] for w in (1, 2)}
    lines = [
        "# WFDB ingestion speed (cohort builder)",
        "",
        f"Produced by `benchmarks/build_wfdb_speed.py`: {args.records} MIMIC-shaped records (12 leads, 500 Hz, "
        f"10 s, format 16), page cache warm, {cpus} CPUs shared with other jobs (1-min load average "
        f"{load:.1f} at the end: when it exceeds the CPU count, wall-clock rates measure the contention, "
        "not the builder; the CPU time per record does not depend on it).",
        "",
        "| workers | wall s (start-up incl.) | records/s overall | records/s after start-up | "
        "CPU ms / record | records/s if the workers had their cores |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for w in (1, 2):
        t = timed[w]
        lines.append(
            f"| {w} | {t['seconds']:.1f} | {t['records_per_second']:,.0f} | {t['steady_records_per_second']:,.0f} | "
            f"{t['cpu_ms_per_record']:.2f} | {capacity[w]:,.0f} |"
        )
    lines += [
        "",
        f"Scaling 1 → 2 workers: wall-clock (after start-up) "
        f"{timed[2]['steady_records_per_second'] / timed[1]['steady_records_per_second']:.2f}×; CPU cost per "
        f"record with 2 workers is {timed[2]['cpu_ms_per_record'] / timed[1]['cpu_ms_per_record']:.2f}× that of "
        f"1 (1.00 = no parallel overhead), so 2 free cores give {capacity[2]:,.0f} records/s "
        f"(target ≥ 300: {'met' if capacity[2] >= 300 else 'NOT met'}). With 1 worker the records are read in the "
        "main process; with 2, worker processes started by a fork server write straight into the memmap.",
    ]
    lines += [
        "",
        "References (one process, per record, same files):",
        "",
        "| operation | ms / record | ratio to our read_record |",
        "|---|---:|---:|",
        f"| `np.fromfile` of the .dat (I/O floor) | {1e3 * ref['fromfile']:.2f} | "
        f"{ref['fromfile'] / ref['read_record']:.2f} |",
        f"| our `read_record` (header + samples + preprocess) | {1e3 * ref['read_record']:.2f} | 1.00 |",
        f"| of which `preprocess` (interpolate, resample 500→100 Hz, clip) | {1e3 * ref['preprocess']:.2f} | "
        f"{ref['preprocess'] / ref['read_record']:.2f} |",
        f"| `wfdb.rdrecord` alone (no preprocessing) | {1e3 * ref['wfdb_rdrecord']:.2f} | "
        f"{ref['wfdb_rdrecord'] / ref['read_record']:.2f} |",
        "",
        "`wfdb.rdrecord` is slow with pandas 3 (its header parser does a pandas `.loc` look-up per field), so the "
        "builder parses MIMIC's simple single-file format-16 headers itself (`ecgkt.signals.wfdb_fast`, checked "
        "sample-identical to wfdb in tests) and falls back to `wfdb.rdrecord` for every other header shape.",
    ]
    (RESULTS / "build_wfdb_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
