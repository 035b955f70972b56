"""Training / evaluation DataLoader throughput, with the store in the page cache (warm) and not (cold).

Issue 7's loader goal is "data loading never the bottleneck" (GPU-starvation check: loader samples/s
≥ 10× training samples/s). On 2 CPU cores 2 workers were once ~15× SLOWER than the main process: the
old loader returned one dict per sample, each pickled across the worker's process boundary and
collated in the main process. `ecgkt.train.data` now samples whole batches (`EpochCropBatchSampler`,
`EvalBatchSampler`), reads each batch from the memory map into one array and runs the DataLoader
with `batch_size=None`, so a worker returns ready tensors.

Two parts, on ONE store in ONE run, so only ratios are meant to be compared:

1. Warm, steady state (`--cache warm` or `both`): per-sample loading (before) vs whole batches
   (after), 0/1/2 workers, median of repeats after a warm-up epoch that also starts persistent
   workers.
   - before: the old path, re-created here exactly as `StoreDataModule.train_dataloader` built it
     (`DataLoader(dataset, batch_size, sampler=EpochCropSampler, drop_last=True,
     persistent_workers=False)`, per-sample `dataset[(position, start)]` + default collate), and the
     same again with persistent workers, to separate the worker start-up from the per-sample cost;
   - after: `StoreDataModule.train_dataloader()` / `eval_dataloader("val")` as the stages use them.
2. Cold vs warm page cache (`--cache cold`, `warm` or `both`): one pass of the *after* loaders per
   timed pass, each on a freshly built `StoreDataModule` (fresh memory map, workers started inside
   the pass and shut down after it). Before a cold pass `signals.npy` is evicted with
   `posix_fadvise(POSIX_FADV_DONTNEED)`; before a warm pass it is read once in full. Eviction does not
   drop pages that a live process has memory-mapped, so every reference to the previous module,
   loader and memmap is dropped and garbage-collected first, `/proc/*/maps` is checked for leftover
   mappings, and the resident bytes of the file (`fincore`) are recorded before and after eviction and
   after the pass. A cold row whose eviction left more than 1 % of the file resident is flagged
   unverified in the results instead of being reported as cold. Cold and warm passes alternate, so
   load drift on the shared machine touches both alike.

samples/s = records delivered per second of wall time over whole passes; main CPU ms/batch = CPU
time of the main process (children excluded) per batch: what loading takes from a training loop in
that process. The training rate the loader is compared with is the `paper` preset's training
samples/s from benchmarks/results/encoder.json (latest run; ≈ 17.7 at batch 32, 1 thread).

Run:  .venv/bin/python benchmarks/loader.py [--records 12288] [--repeats 5] [--cold-repeats 3]
          [--cache cold|warm|both] [--dir PARENT_OF_TEMP_STORE] [--no-write]
Writes benchmarks/results/loader.json and benchmarks/results/loader.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ecgkt.atomic_files import write_text_atomically
from ecgkt.config import DataConfig
from ecgkt.train.data import EpochCropSampler, StoreDataModule

RESULTS = Path(__file__).parent / "results"
BATCH = 32
EVAL_BATCH = 128
WORKERS = (0, 1, 2)
# Used only when benchmarks/results/encoder.json has no paper-preset training rate: its pass-2 figure
# (paper preset, batch 32, 1 thread, CPU clock, this 2-core machine).
PAPER_TRAIN_SAMPLES_PER_S = 17.7
STARVATION_FACTOR = 10  # issue 7: loader samples/s >= 10x training samples/s
# A "cold" pass may start with at most this fraction of signals.npy resident in the page cache.
COLD_RESIDENT_LIMIT = 0.01


# ---- the "before" loaders ---------------------------------------------------------------------------


def per_sample_train_loader(module: StoreDataModule, workers: int, persistent: bool) -> DataLoader[Any]:
    """The training loader as it was before batch-level loading (one pickled dict per sample)."""
    train = module.dataset("train")
    max_start = module.store.manifest.preprocessing.num_samples - module.data.window_samples
    sampler = EpochCropSampler(len(train), max_start, seed=module.seed, shuffle=True)
    return DataLoader(
        train,
        batch_size=module.data.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        persistent_workers=persistent and workers > 0,
    )


def per_sample_eval_loader(module: StoreDataModule, workers: int) -> DataLoader[Any]:
    """The evaluation loader as it was before (per-record (4, 12, 250) items, default collate)."""
    return DataLoader(module.dataset("val"), batch_size=module.data.eval_batch_size, shuffle=False, num_workers=workers)


def measure(loader: Iterable[dict[str, torch.Tensor]], repeats: int) -> tuple[float, float]:
    """(median records/s, median main-process CPU ms per batch) over `repeats` full passes, after one
    warm-up pass. The CPU time is what loading takes away from a training loop in the same process;
    on a shared machine it is also steadier than wall time."""
    rates, cpu_ms = [], []
    for attempt in range(repeats + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        sizes = [len(batch["x"]) for batch in loader]
        if attempt > 0:
            rates.append(sum(sizes) / (time.perf_counter() - wall))
            cpu_ms.append((time.process_time() - cpu) / len(sizes) * 1e3)
    return statistics.median(rates), statistics.median(cpu_ms)


def make_store(path: Path, n_records: int) -> Path:
    """The same random store benchmarks/encoder.py measures its loader row on (the script's folder is
    on sys.path when it runs, as for any `python benchmarks/loader.py`)."""
    from encoder import make_loader_store

    return make_loader_store(path, n_records)


def data_module(store: Path, workers: int) -> StoreDataModule:
    data = DataConfig(batch_size=BATCH, eval_batch_size=EVAL_BATCH, num_workers=workers)
    module = StoreDataModule(store, data, seed=0, target="diagnoses")
    module.setup()
    return module


def warm_steady_rows(store: Path, repeats: int) -> list[dict[str, Any]]:
    """Part 1: before/after loaders, persistent where they were, page cache warm. A function of its
    own so that its modules, loaders and workers are gone (and their mappings with them) on return."""
    rows: list[dict[str, Any]] = []
    for workers in WORKERS:
        module = data_module(store, workers)
        loaders: dict[str, Iterable[dict[str, torch.Tensor]]] = {
            "train, before": per_sample_train_loader(module, workers, persistent=False),
            "train, before + persistent workers": per_sample_train_loader(module, workers, persistent=True),
            "train, after": module.train_dataloader(),
            "eval, before": per_sample_eval_loader(module, workers),
            "eval, after": module.eval_dataloader("val"),
        }
        for name, loader in loaders.items():
            if workers == 0 and "persistent" in name:
                continue
            rate, cpu_ms = measure(loader, repeats)
            rows.append({"loader": name, "workers": workers, "samples_per_s": rate, "main_cpu_ms_per_batch": cpu_ms})
            print(f"warm  {name:<36} workers={workers}: {rate:>10,.0f} samples/s, main CPU {cpu_ms:.3f} ms/batch")
    by_key = {(row["loader"], row["workers"]): row["samples_per_s"] for row in rows}
    for row in rows:
        kind = row["loader"].split(",")[0]
        row["vs_before_same_workers"] = row["samples_per_s"] / by_key[(f"{kind}, before", row["workers"])]
        row["vs_after_0_workers"] = row["samples_per_s"] / by_key[(f"{kind}, after", 0)]
    return rows


# ---- page cache control -----------------------------------------------------------------------------


class CacheControlError(RuntimeError):
    """The page-cache state of the store's signals file cannot be observed (no `fincore`)."""


def resident_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache, from util-linux `fincore` (mincore(2) on a fresh mapping,
    which does not fault pages in)."""
    if shutil.which("fincore") is None:
        raise CacheControlError(f"{path}: `fincore` (util-linux) is not installed; cannot verify eviction")
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[0])


def evict(path: Path) -> None:
    """Ask the kernel to drop `path`'s clean pages (not those mapped by a live process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_through(path: Path) -> float:
    """Read the whole file once (into the page cache); returns MB/s."""
    started, size = time.perf_counter(), 0
    with open(path, "rb", buffering=0) as stream:
        while chunk := stream.read(1 << 24):
            size += len(chunk)
    return size / (time.perf_counter() - started) / 1e6


def processes_mapping(path: Path) -> list[int]:
    """PIDs whose /proc/<pid>/maps name `path` (processes of other users are not readable, and cannot
    map this private temporary file anyway)."""
    pids = []
    needle = str(path.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "maps").read_text():
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return pids


# ---- part 2: cold vs warm -------------------------------------------------------------------------------


def timed_fresh_pass(store: Path, kind: str, workers: int) -> dict[str, float]:
    """One pass of a freshly built loader. Returns wall seconds, main CPU seconds, samples, batches and
    time to the first batch. Everything it builds dies with its frame, worker processes included."""
    module = data_module(store, workers)
    loader = module.train_dataloader() if kind == "train" else module.eval_dataloader("val")
    wall, cpu = time.perf_counter(), time.process_time()
    first_batch, samples, batches = 0.0, 0, 0
    iterator = iter(loader)
    for batch in iterator:
        if batches == 0:
            first_batch = time.perf_counter() - wall
        samples += len(batch["x"])
        batches += 1
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    # Dropping the loader drops its persistent worker iterator, which shuts the workers down (the
    # caller's gc.collect() catches cycles; it then checks /proc for any leftover mapping).
    del iterator, loader, module
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "samples": samples,
        "batches": batches,
        "first_batch_seconds": first_batch,
    }


def prepare_cache(signals: Path, cache: str) -> dict[str, Any]:
    """Bring `signals` into the requested state and record the evidence."""
    gc.collect()  # the previous pass's memmap must be unmapped before eviction can drop its pages
    holders = processes_mapping(signals)
    state: dict[str, Any] = {"mapped_by_pids": holders, "resident_before_prepare": resident_bytes(signals)}
    if cache == "cold":
        evict(signals)
    else:
        read_through(signals)
    state["resident_at_start"] = resident_bytes(signals)
    return state


def cold_warm_passes(store: Path, repeats: int, caches: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every timed pass of part 2, in the interleaved order they ran."""
    signals = store / "signals.npy"
    size = signals.stat().st_size
    passes: list[dict[str, Any]] = []
    for repeat in range(repeats):
        for workers in WORKERS:
            for kind in ("train", "eval"):
                for cache in caches:
                    state = prepare_cache(signals, cache)
                    timing = timed_fresh_pass(store, kind, workers)
                    state["resident_after_pass"] = resident_bytes(signals)
                    verified = (
                        state["resident_at_start"] <= COLD_RESIDENT_LIMIT * size
                        if cache == "cold"
                        else state["resident_at_start"] >= (1 - COLD_RESIDENT_LIMIT) * size
                    )
                    row = {"repeat": repeat, "loader": kind, "cache": cache, "workers": workers, **timing, **state}
                    row["cache_state_verified"] = verified
                    passes.append(row)
                    print(
                        f"{cache:<5} {kind:<5} workers={workers} repeat {repeat}: "
                        f"{timing['samples'] / timing['seconds']:>9,.0f} samples/s, resident at start "
                        f"{state['resident_at_start'] / 1e6:,.1f} MB → after pass "
                        f"{state['resident_after_pass'] / 1e6:,.1f} MB (of {size / 1e6:,.1f})"
                        + ("" if verified else "  [cache state NOT as intended]"),
                        flush=True,
                    )
    return passes


def summarise(passes: list[dict[str, Any]], paper_rate: float) -> list[dict[str, Any]]:
    """Median per (loader, cache, workers) over the passes whose cache state was verified."""
    rows = []
    keys = sorted(
        {(p["loader"], p["cache"], p["workers"]) for p in passes}, key=lambda k: (k[0] != "train", k[2], k[1])
    )
    for loader, cache, workers in keys:
        group = [p for p in passes if (p["loader"], p["cache"], p["workers"]) == (loader, cache, workers)]
        good = [p for p in group if p["cache_state_verified"]]
        row: dict[str, Any] = {
            "loader": loader,
            "cache": cache,
            "workers": workers,
            "passes": len(group),
            "verified_passes": len(good),
            "resident_before_prepare_mb": statistics.median(p["resident_before_prepare"] for p in group) / 1e6,
            "resident_at_start_mb_max": max(p["resident_at_start"] for p in group) / 1e6,
            "resident_at_start_mb_min": min(p["resident_at_start"] for p in group) / 1e6,
            "read_into_cache_mb": statistics.median(p["resident_after_pass"] - p["resident_at_start"] for p in group)
            / 1e6,
            "mapped_by_other_processes": sorted({pid for p in group for pid in p["mapped_by_pids"]}),
        }
        if good:
            rate = statistics.median(p["samples"] / p["seconds"] for p in good)
            row["samples_per_s"] = rate
            row["main_cpu_ms_per_batch"] = statistics.median(p["cpu_seconds"] / p["batches"] * 1e3 for p in good)
            row["first_batch_ms"] = statistics.median(p["first_batch_seconds"] * 1e3 for p in good)
            row["pass_seconds"] = statistics.median(p["seconds"] for p in good)
            row["over_paper_training"] = rate / paper_rate if loader == "train" else None
        rows.append(row)
    return rows


def paper_training_rate() -> tuple[float, str]:
    """(samples/s, where it came from): the latest encoder.json run with a paper training rate."""
    path = RESULTS / "encoder.json"
    try:
        runs = json.loads(path.read_text())
        for label in reversed(list(runs)):
            rate = runs[label].get("presets", {}).get("paper", {}).get("train_samples_per_s")
            if rate:
                return float(rate), f"benchmarks/results/encoder.json, run '{label}'"
    except (OSError, ValueError, AttributeError):
        pass
    return PAPER_TRAIN_SAMPLES_PER_S, "documented constant (encoder.json not found or without a paper rate)"


def storage_speed(signals: Path) -> dict[str, float]:
    """Sequential read MB/s of the signals file, cold and warm: context for the cold loader figures
    (a virtual disk backed by the host's page cache is far faster than a real drive or NFS)."""
    gc.collect()
    evict(signals)
    resident = resident_bytes(signals)
    cold = read_through(signals)
    return {
        "cold_seq_read_mb_s": cold,
        "warm_seq_read_mb_s": read_through(signals),
        "resident_before_cold_read": resident,
    }


# ---- run ------------------------------------------------------------------------------------------------


def run(n_records: int, repeats: int, cold_repeats: int, cache: str, tmp_parent: str | None = None) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.time()
    caches = ("cold", "warm") if cache == "both" else (cache,)
    paper_rate, paper_source = paper_training_rate()
    result: dict[str, Any] = {"records": n_records, "cache_modes": list(caches)}
    with tempfile.TemporaryDirectory(prefix="ecgkt-loader-", dir=tmp_parent) as tmp:
        store = make_store(Path(tmp) / "store", n_records)
        signals = store / "signals.npy"
        probe = data_module(store, 0)
        result["train_records"], result["val_records"] = len(probe.dataset("train")), len(probe.dataset("val"))
        del probe
        if "warm" in caches:
            result["rows"] = warm_steady_rows(store, repeats)
        gc.collect()
        result["signals_bytes"] = signals.stat().st_size
        result["storage"] = storage_speed(signals)
        passes = cold_warm_passes(store, cold_repeats, caches)
    result["cold_warm"] = {
        "repeats": cold_repeats,
        "paper_train_samples_per_s": paper_rate,
        "paper_train_source": paper_source,
        "resident_limit_fraction": COLD_RESIDENT_LIMIT,
        "all_verified": all(p["cache_state_verified"] for p in passes),
        "rows": summarise(passes, paper_rate),
        "passes": passes,
    }
    result.update(
        {
            "batch_size": BATCH,
            "eval_batch_size": EVAL_BATCH,
            "repeats": repeats,
            "torch_threads": 1,
            "cpu_count": os.cpu_count(),
            "load_average_end": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "seconds": round(time.time() - started, 1),
        }
    )
    return result


# ---- markdown ------------------------------------------------------------------------------------------


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# DataLoader throughput: warm and cold page cache; per-sample (before) vs whole batches (after)",
        "",
        f"Store of {result['records']:,} random records (train {result['train_records']:,}, "
        f"val {result['val_records']:,}), 12 × 1000 float32 each ({result['signals_bytes'] / 1e6:,.0f} MB "
        f"`signals.npy`), memory-mapped; training batches of {result['batch_size']} random 250-sample "
        f"crops, evaluation batches of {result['eval_batch_size']} records × 4 windows; torch threads 1; "
        f"{result['cpu_count']} CPUs shared with other jobs (load average {result['load_average_end']} at "
        f"the end; {result['platform']}, torch {result['torch']}). Produced by `benchmarks/loader.py` in "
        f"{result['seconds']} s.",
        "",
        "Compare the ratios (measured in the same run), not the absolute rates across machines.",
        "",
    ]
    lines += _cold_warm_section(result)
    if "rows" in result:
        lines += _warm_steady_section(result)
    return "\n".join(lines) + "\n"


def _cold_warm_section(result: dict[str, Any]) -> list[str]:
    part = result["cold_warm"]
    storage = result["storage"]
    paper = part["paper_train_samples_per_s"]
    lines = [
        "## Cold vs warm page cache (fresh loader per pass)",
        "",
        f"One pass per timing on a freshly built `StoreDataModule` (fresh memmap; workers started in the "
        f"pass, so their start-up is included: see *first batch*); median of {part['repeats']} passes per "
        "row, cold and warm passes alternating. *cold*: `signals.npy` evicted with "
        "`posix_fadvise(DONTNEED)` after every mapping of it was gone; *warm*: read once in full before "
        f"the pass. Resident bytes from `fincore`. Training rate compared with: {paper:.1f} samples/s "
        f"(paper preset, batch 32; {part['paper_train_source']}); the goal is ≥ {STARVATION_FACTOR}×.",
        "",
        f"Storage of this run: sequential read of the evicted file {storage['cold_seq_read_mb_s']:,.0f} MB/s "
        f"(resident before that read: {storage['resident_before_cold_read'] / 1e6:,.1f} MB), from the page "
        f"cache {storage['warm_seq_read_mb_s']:,.0f} MB/s.",
        "",
        "Eviction verified: "
        + (
            f"yes — every cold pass started with ≤ {part['resident_limit_fraction']:.0%} of the file resident."
            if part["all_verified"]
            else "**NO for some passes** — those passes are excluded from the medians (see *verified*)."
        ),
        "",
        "| loader | cache | workers | samples/s | × paper training | main CPU ms/batch | first batch ms | "
        "resident MB before eviction → at start | MB read into cache | verified |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["rows"]:
        ratio = "—" if row.get("over_paper_training") is None else f"{row['over_paper_training']:,.0f}×"
        rate = f"{row['samples_per_s']:,.0f}" if "samples_per_s" in row else "n/a"
        cpu = f"{row['main_cpu_ms_per_batch']:.3f}" if "main_cpu_ms_per_batch" in row else "n/a"
        first = f"{row['first_batch_ms']:.1f}" if "first_batch_ms" in row else "n/a"
        start = (
            f"{row['resident_at_start_mb_max']:,.1f}"
            if row["cache"] == "cold"
            else f"{row['resident_at_start_mb_min']:,.1f}"
        )
        lines.append(
            f"| {row['loader']} | {row['cache']} | {row['workers']} | {rate} | {ratio} | {cpu} | {first} | "
            f"{row['resident_before_prepare_mb']:,.1f} → {start} | {row['read_into_cache_mb']:,.1f} | "
            f"{row['verified_passes']}/{row['passes']} |"
        )
    lines += [
        "",
        "- *resident MB before eviction → at start*: median resident bytes before the cache was prepared,"
        " then the largest (cold) / smallest (warm) resident bytes at the start of a timed pass.",
        "- *MB read into cache*: resident bytes after the pass minus at its start (median): what the pass"
        " (with the kernel's readahead) brought in from storage.",
        "- *first batch ms*: from `iter(loader)` to the first batch, worker start-up included.",
        "",
        "Reading of this run:",
        "",
        *_cold_reading(part["rows"], paper),
        "",
    ]
    return lines


def _best(rows: list[dict[str, Any]], loader: str, cache: str) -> dict[str, Any] | None:
    candidates = [r for r in rows if r["loader"] == loader and r["cache"] == cache and "samples_per_s" in r]
    return max(candidates, key=lambda r: r["samples_per_s"]) if candidates else None


def _cold_reading(rows: list[dict[str, Any]], paper: float) -> list[str]:
    """Conclusions computed from the rows, so the text cannot drift from the data."""
    at = {(r["loader"], r["cache"], r["workers"]): r for r in rows if "samples_per_s" in r}
    lines = []
    for cache in ("cold", "warm"):
        best = _best(rows, "train", cache)
        if best is None:
            continue
        others = ", ".join(
            f"{w} workers {at[('train', cache, w)]['samples_per_s']:,.0f}"
            for w in WORKERS
            if w != best["workers"] and ("train", cache, w) in at
        )
        lines.append(
            f"- Best training loader, {cache} cache: **{best['workers']} workers**, "
            f"{best['samples_per_s']:,.0f} samples/s ({others}); "
            f"{best['over_paper_training']:,.0f}× the paper preset's training rate."
        )
    train_rows = [r for r in rows if r["loader"] == "train" and "samples_per_s" in r]
    if train_rows:
        worst = min(train_rows, key=lambda r: r["samples_per_s"])
        verdict = "met" if worst["samples_per_s"] >= STARVATION_FACTOR * paper else "**NOT met**"
        line = (
            f"- GPU-starvation check (≥ {STARVATION_FACTOR}× training) {verdict} by every configuration: the "
            f"slowest, {worst['cache']} with {worst['workers']} workers, delivers {worst['samples_per_s']:,.0f} "
            f"samples/s = {worst['over_paper_training']:,.0f}× the {paper:.1f} samples/s the paper preset trains at."
        )
        serial = at.get(("train", "cold", 0))
        if serial is not None:
            line += (
                f" With 0 workers, where loading runs between training steps, a cold cache costs "
                f"{100 * paper / serial['samples_per_s']:.2f} % of the step time."
            )
        lines.append(line)
    best_eval = _best(rows, "eval", "cold")
    warm_eval = at.get(("eval", "warm", best_eval["workers"])) if best_eval else None
    if best_eval and warm_eval:
        lines.append(
            f"- Evaluation, cold cache: best with **{best_eval['workers']} workers**, "
            f"{best_eval['samples_per_s']:,.0f} records/s ({warm_eval['samples_per_s']:,.0f} warm), reading "
            f"{best_eval['read_into_cache_mb']:,.0f} MB for the validation split — only its own records, because "
            "`window_batch` requests them with `POSIX_FADV_WILLNEED` before copying (without it the fault "
            "readahead pulled in the whole file; see docs/performance.md)."
        )
    for workers in WORKERS:
        cold, warm = at.get(("train", "cold", workers)), at.get(("train", "warm", workers))
        if cold and warm:
            lines.append(
                f"- train, {workers} workers: cold / warm = {cold['samples_per_s'] / warm['samples_per_s']:.2f} "
                f"({cold['samples_per_s']:,.0f} vs {warm['samples_per_s']:,.0f} samples/s), main CPU "
                f"{cold['main_cpu_ms_per_batch']:.3f} vs {warm['main_cpu_ms_per_batch']:.3f} ms/batch, "
                f"{cold['read_into_cache_mb']:,.0f} MB read per cold epoch."
            )
    return lines


def _warm_steady_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Warm, steady state: per-sample (before) vs whole batches (after)",
        "",
        f"Median of {result['repeats']} full passes after a warm-up pass (which also starts persistent "
        "workers); the store stays in the page cache.",
        "",
        "| loader | workers | samples/s | × before, same workers | × after, 0 workers | main CPU ms/batch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['loader']} | {row['workers']} | {row['samples_per_s']:,.0f} | "
            f"{row['vs_before_same_workers']:.2f} | {row['vs_after_0_workers']:.2f} | "
            f"{row['main_cpu_ms_per_batch']:.3f} |"
        )
    lines += [
        "",
        "- *before*: `DataLoader(batch_size, sampler=EpochCropSampler, drop_last=True)` over per-sample",
        "  items, as `StoreDataModule` built it before (non-persistent workers, restarted every epoch);",
        "  *before + persistent workers* isolates the per-sample pickling from worker start-up.",
        "- *after*: `StoreDataModule.train_dataloader()` / `eval_dataloader()`: batch samplers,",
        "  `batch_size=None`, one array per batch read from the memmap in sorted-row order,",
        "  persistent workers when `num_workers > 0`.",
        "- *main CPU ms/batch*: CPU time of the main process per batch (children excluded): what",
        "  loading takes from a training loop running in that process.",
        "",
        "Reading of this part:",
        "",
        *_warm_reading(result["rows"]),
    ]
    return lines


def _warm_reading(rows: list[dict[str, Any]]) -> list[str]:
    """Plain-language conclusions computed from the rows (so the text cannot drift from the data)."""
    at = {(row["loader"], row["workers"]): row for row in rows}
    lines = []
    for workers in (1, 2):
        after, before = at[("train, after", workers)], at[("train, before", workers)]
        lines.append(
            f"- train, {workers} worker(s): {after['samples_per_s'] / before['samples_per_s']:.1f}× the "
            f"per-sample loader ({after['samples_per_s']:,.0f} vs {before['samples_per_s']:,.0f} samples/s)."
        )
    best = max((at[("train, after", w)] for w in WORKERS), key=lambda row: row["samples_per_s"])
    two = at[("train, after", 2)]
    lines.append(
        f"- Fastest steady-state training loader: {best['workers']} workers, {best['samples_per_s']:,.0f} "
        f"samples/s at {best['main_cpu_ms_per_batch']:.3f} ms of main-process CPU per batch (2 workers: "
        f"{two['samples_per_s']:,.0f} samples/s, {two['main_cpu_ms_per_batch']:.3f} ms). From the page "
        "cache a batch is one memcpy in the main process; receiving it from a worker (pipe message, "
        "unpickle) costs more than that, and on 2 shared cores the workers also wait to be scheduled."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=12288, help="records in the temporary store")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per warm steady-state loader (median)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="timed passes per cold/warm fresh-loader row")
    parser.add_argument("--cache", choices=("cold", "warm", "both"), default="both", help="which cache states to run")
    parser.add_argument("--dir", default=None, help="where the temporary store goes (default: the system temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not overwrite benchmarks/results")
    args = parser.parse_args()
    try:
        result = run(args.records, args.repeats, args.cold_repeats, args.cache, args.dir)
    except CacheControlError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    if args.no_write:
        print(render_markdown(result))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomically(RESULTS / "loader.json", json.dumps(result, indent=2) + "\n")
    write_text_atomically(RESULTS / "loader.md", render_markdown(result))
    print(f"wrote {RESULTS / 'loader.md'}")


if __name__ == "__main__":
    main()
