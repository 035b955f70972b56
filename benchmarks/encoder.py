"""How close the S4 encoder Φx gets to this machine's float32 matrix-multiply peak (issue 7).

Everything is measured in ONE run so the ratios survive a shared, noisy machine:
- peak: float32 matmul FLOP/s (n×n @ n×n, n = 1024 and 2048, best median), same thread count;
- FLOPs per sample of the encoder at the `paper` and `cpu` presets (250-sample crops):
  `torch.utils.flop_counter.FlopCounterMode` for matmuls / convolutions, forward and forward +
  backward counted exactly, plus the FFTs added analytically (a real FFT of N points ≈ 2.5·N·log2 N,
  half of the 5·N·log2 N of a complex FFT) because the counter does not count FFTs;
- training samples/s: forward + backward + AdamW step, batch 32, train mode (dropout on);
- inference samples/s: eval mode, no grad, one ECG = 4 windows per call, and a batch of 128 windows;
- achieved fraction of peak = FLOPs/sample × samples/s ÷ matmul FLOP/s;
- single-ECG latency: `Predictor.predict_path` end to end from a WFDB file (read, preprocess,
  4 windows, heads, report object) on a bundle with random weights, against its FLOP-bound time
  (the model's forward FLOPs for 4 windows ÷ matmul peak);
- loader: samples/s of the training DataLoader (`ecgkt.train.data.StoreDataModule`, random crops
  from the memmapped store) vs the training samples/s at the same preset (goal ≥ 10×).

Each timing is the median of several repeats. Run:

    .venv/bin/python benchmarks/encoder.py --label before   # or --label after
    .venv/bin/python benchmarks/encoder.py --label after --presets cpu --quick

Results go to benchmarks/results/encoder.json (one entry per label, the latest run of a label
replaces the earlier one) and benchmarks/results/encoder.md (BEFORE / AFTER side by side).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ecgkt.atomic_files import write_text_atomically
from ecgkt.config import preset
from ecgkt.models.config import EcgEncoderConfig
from ecgkt.models.encoders import EcgEncoder
from ecgkt.models.s4 import S4Layer

RESULTS = Path(__file__).parent / "results"
WINDOW = 250
TRAIN_BATCH = 32
ECG_WINDOWS = 4


@dataclass(frozen=True)
class PairedTiming:
    """Per-repeat seconds of a workload, each paired with the matmul FLOP/s measured around it.

    On a shared machine the CPU share of this process drifts by 2× within a minute; a fraction of
    peak computed per repeat from measurements taken seconds apart cancels that drift.
    """

    seconds: list[float]
    peaks: list[float]

    def per_second(self, items_per_call: int) -> float:
        return items_per_call / statistics.median(self.seconds)

    def fraction_of_peak(self, flops_per_call: float) -> float:
        return statistics.median(
            flops_per_call / seconds / peak for seconds, peak in zip(self.seconds, self.peaks, strict=True)
        )

    @property
    def peak(self) -> float:
        return statistics.median(self.peaks)


_PAIR_N = 1024
_PAIR_A, _PAIR_B = torch.randn(_PAIR_N, _PAIR_N), torch.randn(_PAIR_N, _PAIR_N)
_PAIR_OUT = torch.empty(_PAIR_N, _PAIR_N)


# The clock every timing uses. "cpu" (process CPU time, the default at 1 thread) counts only the time
# this process actually ran, so other jobs on the shared cores do not inflate it; "wall" is
# perf_counter (use it on an idle machine, or with several threads, where CPU time sums the threads).
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
_clock: Callable[[], float] = time.process_time


def _matmul_block(count: int = 3) -> float:
    started = _clock()
    for _ in range(count):
        torch.mm(_PAIR_A, _PAIR_B, out=_PAIR_OUT)
    return _clock() - started


def paired_timing(run: Callable[[], object], repeats: int, warmup: int = 2) -> PairedTiming:
    """Time `run` `repeats` times, each between two blocks of 1024³ matmuls (the local peak)."""
    for _ in range(warmup):
        run()
    seconds, peaks = [], []
    for _ in range(repeats):
        matmul_seconds = _matmul_block()
        started = _clock()
        run()
        seconds.append(_clock() - started)
        matmul_seconds += _matmul_block()
        peaks.append(6 * 2.0 * _PAIR_N**3 / matmul_seconds)
    return PairedTiming(seconds, peaks)


def median_seconds(
    run: Callable[[], object], repeats: int, warmup: int = 2, clock: Callable[[], float] | None = None
) -> float:
    now = clock or _clock
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = now()
        run()
        times.append(now() - started)
    return statistics.median(times)


# ---- the machine ----------------------------------------------------------------------------------


def matmul_peak_flops(repeats: int) -> dict[str, float]:
    """Median float32 FLOP/s of square matmuls; the best size is this run's 'peak'."""
    measured: dict[str, float] = {}
    for n in (1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)

        def multiply(a: torch.Tensor = a, b: torch.Tensor = b, out: torch.Tensor = out) -> None:
            torch.mm(a, b, out=out)

        seconds = median_seconds(multiply, repeats)
        measured[f"mm{n}"] = 2.0 * n**3 / seconds
    measured["peak"] = max(measured.values())
    return measured


# ---- FLOPs ----------------------------------------------------------------------------------------


def _real_fft_flops(n_points: int) -> float:
    return 2.5 * n_points * math.log2(n_points)


def fft_flops(encoder: EcgEncoder, batch: int, length: int) -> tuple[float, float]:
    """(forward, backward) FFT FLOPs of one call on `batch` sequences, counted per S4 layer.

    Forward: rfft of the input (B·H transforms), rfft of the kernel (H), irfft of the product (B·H),
    all of 2L points. Backward: the adjoints, one transform per forward transform whose input needs a
    gradient (the input's and the kernel's) plus the output's: 2·B·H + H again.
    """
    forward = backward = 0.0
    for module in encoder.modules():
        if isinstance(module, S4Layer):
            per = _real_fft_flops(2 * length)
            h = module.d_model
            forward += (2 * batch * h + h) * per
            backward += (2 * batch * h + h) * per
    return forward, backward


def count_flops(config: EcgEncoderConfig, batch: int) -> dict[str, float]:
    """Per-sample FLOPs at this batch size (the kernel evaluation is shared by the batch)."""
    torch.manual_seed(0)
    encoder = EcgEncoder(config).train()
    x = torch.randn(batch, config.in_channels, WINDOW)
    with FlopCounterMode(display=False) as forward_counter:
        out = encoder(x)
    with FlopCounterMode(display=False) as backward_counter:
        out.square().mean().backward()
    fft_forward, fft_backward = fft_flops(encoder, batch, WINDOW)
    forward = forward_counter.get_total_flops() + fft_forward
    backward = backward_counter.get_total_flops() + fft_backward
    return {
        "batch": batch,
        "forward_per_sample": forward / batch,
        "train_per_sample": (forward + backward) / batch,
        "fft_share_forward": fft_forward / forward,
    }


# ---- throughput -----------------------------------------------------------------------------------


def training_timing(config: EcgEncoderConfig, repeats: int, compile_model: bool = False) -> PairedTiming:
    """Steps of batch 32: samples/s of forward + backward + AdamW; `compile_model` wraps the encoder in torch.compile
    (its one-off compilation happens in the warm-up steps and is not timed)."""
    torch.manual_seed(0)
    encoder = EcgEncoder(config).train()
    model = cast(nn.Module, torch.compile(encoder, dynamic=False)) if compile_model else encoder
    head = nn.Linear(config.d_model, 1)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-3, weight_decay=1e-3)
    x = torch.randn(TRAIN_BATCH, config.in_channels, WINDOW)
    target = torch.randn(TRAIN_BATCH, 1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(head(model(x)), target)
        loss.backward()
        optimizer.step()

    return paired_timing(step, repeats)


def inference_timing(config: EcgEncoderConfig, batch: int, repeats: int) -> PairedTiming:
    torch.manual_seed(0)
    encoder = EcgEncoder(config).eval()
    x = torch.randn(batch, config.in_channels, WINDOW)

    def run() -> None:
        with torch.inference_mode():
            encoder(x)

    return paired_timing(run, repeats)


# ---- single ECG, end to end -----------------------------------------------------------------------


def predict_latency(config: EcgEncoderConfig, folder: Path, repeats: int) -> dict[str, float]:
    """`Predictor.predict_path` on a WFDB file; FLOP-bound = whole model forward on 4 windows ÷ peak.

    The bundle carries a fitted explanation surrogate (as after `ecgkt calibrate`; fitted here on
    random probabilities, its cost does not depend on them), so the measured path is read → preprocess
    → model → report. The no-calibration fallback (gradient explanation: an extra forward + backward
    per ECG) is timed too, for reference, against the same forward-only bound.
    """
    from _common import random_bundle
    from ecgkt.bundle import load_bundle
    from ecgkt.explain.surrogate import fit_surrogate, save_surrogate
    from ecgkt.export.parity import PARITY_ECGS, write_synthetic_wfdb
    from ecgkt.predict.engine import Predictor

    diagnosis_labels = [f"D{index:03d}" for index in range(100)]
    lab_labels = [f"L{index:02d}_high" for index in range(90)]
    bundle = random_bundle(
        folder / f"bundle-{config.d_model}",
        encoder=config,
        diagnosis_labels=diagnosis_labels,
        lab_labels=lab_labels,
        head_hidden=[256],
        note="random weights: encoder benchmark only",
    )
    model = load_bundle(bundle).model
    rng = np.random.default_rng(0)
    surrogate = fit_surrogate(rng.random((200, 90)), rng.random((200, 100)), diagnosis_labels, lab_labels)
    save_surrogate(bundle, surrogate)
    header = write_synthetic_wfdb(folder / "wfdb", PARITY_ECGS[0], record_name="ecg", seed=3)
    x = torch.randn(ECG_WINDOWS, config.in_channels, WINDOW)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    fft_forward, _ = fft_flops(model.encoder, ECG_WINDOWS, WINDOW)
    flops = counter.get_total_flops() + fft_forward
    calibrated = Predictor(load_bundle(bundle), explanation="surrogate")
    timing = paired_timing(lambda: calibrated.predict_path(header), repeats)
    seconds = statistics.median(timing.seconds)
    ratio = statistics.median(s * p / flops for s, p in zip(timing.seconds, timing.peaks, strict=True))
    fallback = Predictor(load_bundle(bundle), explanation="gradient_x_probability")
    fallback_seconds = median_seconds(lambda: fallback.predict_path(header), max(3, repeats // 3))
    return {
        "latency_ms": 1000 * seconds,
        "flop_bound_ms": 1000 * flops / timing.peak,
        "ratio_to_bound": ratio,
        "gradient_explanation_latency_ms": 1000 * fallback_seconds,
    }


# ---- data loading ---------------------------------------------------------------------------------


def make_loader_store(path: Path, n_records: int) -> Path:
    """Random signals in a real store (StoreWriter): the loader's cost does not depend on content."""
    import polars as pl

    from ecgkt.signals.leads import CANONICAL_LEADS
    from ecgkt.store import FoldSpec, PreprocessingSpec, StoreManifest, StoreWriter

    rng = np.random.default_rng(0)
    writer = StoreWriter(path)
    signals = writer.signals(n_records)
    for start in range(0, n_records, 256):
        stop = min(start + 256, n_records)
        signals[start:stop] = rng.normal(0, 0.3, (stop - start, 12, 1000)).astype(np.float32)
    signals.flush()
    folds = np.where(np.arange(n_records) % 10 < 8, np.arange(n_records) % 18, 18 + np.arange(n_records) % 2)
    writer.write_table(
        "records.parquet",
        pl.DataFrame(
            {
                "row": np.arange(n_records),
                "subject_id": 10_000_000 + np.arange(n_records),
                "study_id": 40_000_000 + np.arange(n_records),
                "fold": folds.astype(np.int64),
            }
        ),
    )
    writer.write_table("features.parquet", pl.DataFrame({"age": rng.uniform(20, 90, n_records)}))
    writer.write_table("diagnoses.parquet", pl.DataFrame({"D0": (rng.random(n_records) < 0.3).astype(np.float32)}))
    labs = (rng.random(n_records) < 0.3).astype(np.float32)
    writer.write_table("lab_labels.parquet", pl.DataFrame({"L0_high": labs}))
    writer.write_manifest(
        StoreManifest(
            n_records=n_records,
            preprocessing=PreprocessingSpec(leads=list(CANONICAL_LEADS)),
            diagnosis_labels=["D0"],
            lab_labels=["L0_high"],
            features=[],
            folds=FoldSpec(sizes=[int((folds == f).sum()) for f in range(20)]),
        )
    )
    return writer.commit()


def loader_samples_per_second(store: Path, num_workers: int, repeats: int) -> float:
    """One pass over the training split per repeat (random crops, batch 32), median samples/s."""
    from ecgkt.config import DataConfig
    from ecgkt.train.data import StoreDataModule

    data = DataConfig(batch_size=TRAIN_BATCH, num_workers=num_workers)
    module = StoreDataModule(store, data, seed=0, target="diagnoses")
    module.setup()
    loader = module.train_dataloader()
    n_samples = (len(module.dataset("train")) // TRAIN_BATCH) * TRAIN_BATCH

    def one_epoch() -> None:
        for _ in loader:
            pass

    # Always wall clock: with workers the reading happens in other processes, invisible to CPU time.
    return n_samples / median_seconds(one_epoch, repeats, warmup=1, clock=time.perf_counter)


# ---- driver ---------------------------------------------------------------------------------------


def run(
    presets: list[str], threads: int, quick: bool, label: str, compile_paper: bool, clock: str
) -> dict[str, Any]:
    global _clock
    _clock = CLOCKS[clock]
    torch.set_num_threads(threads)
    try:  # measure what the `ecgkt` CLI runs with (the allocator tuning arrived in the second pass)
        from ecgkt.runtime import tune_allocator

        allocator_tuned = tune_allocator()
    except ImportError:
        allocator_tuned = False
    repeats = 3 if quick else 7
    started = time.time()
    peak = matmul_peak_flops(repeats=10 if quick else 20)
    print(f"matmul peak ({threads} threads): {peak['peak'] / 1e9:.1f} GFLOP/s")
    result: dict[str, Any] = {
        "label": label,
        "threads": threads,
        "clock": clock,
        "allocator_tuned": allocator_tuned,
        "load_average_start": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared), torch {torch.__version__}",
        "matmul_flops": peak,
        "presets": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        store = make_loader_store(folder / "store", n_records=640 if quick else 1280)
        for name in presets:
            config = preset(name).encoder
            flops = count_flops(config, TRAIN_BATCH)
            train = training_timing(config, repeats)
            infer4 = inference_timing(config, ECG_WINDOWS, repeats * 3)
            infer128 = inference_timing(config, 128, repeats)
            latency = predict_latency(config, folder, repeats * 3)
            loader = {f"workers{w}": loader_samples_per_second(store, w, 3 if quick else 5) for w in (0, 2)}
            train_per_s = train.per_second(TRAIN_BATCH)
            entry: dict[str, Any] = {
                "encoder": config.model_dump(),
                "flops": flops,
                "local_matmul_peak": train.peak,
                "train_samples_per_s": train_per_s,
                "train_fraction_of_peak": train.fraction_of_peak(flops["train_per_sample"] * TRAIN_BATCH),
                "infer4_samples_per_s": infer4.per_second(ECG_WINDOWS),
                "infer4_fraction_of_peak": infer4.fraction_of_peak(flops["forward_per_sample"] * ECG_WINDOWS),
                "infer128_samples_per_s": infer128.per_second(128),
                "infer128_fraction_of_peak": infer128.fraction_of_peak(flops["forward_per_sample"] * 128),
                "predict": latency,
                "loader_samples_per_s": loader,
                "loader_over_train": max(loader.values()) / train_per_s,
            }
            if compile_paper and name == "paper":
                compiled = training_timing(config, repeats, compile_model=True)
                entry["train_compiled_samples_per_s"] = compiled.per_second(TRAIN_BATCH)
                entry["train_compiled_fraction_of_peak"] = compiled.fraction_of_peak(
                    flops["train_per_sample"] * TRAIN_BATCH
                )
            result["presets"][name] = entry
            print(
                f"[{name}] fwd {flops['forward_per_sample'] / 1e9:.3f} GFLOP/sample, "
                f"train {train_per_s:.1f} samples/s ({100 * entry['train_fraction_of_peak']:.1f} % of peak), "
                f"infer(4) {entry['infer4_samples_per_s']:.1f}/s ({100 * entry['infer4_fraction_of_peak']:.1f} %), "
                f"infer(128) {entry['infer128_samples_per_s']:.1f}/s "
                f"({100 * entry['infer128_fraction_of_peak']:.1f} %), "
                f"predict {latency['latency_ms']:.1f} ms = {latency['ratio_to_bound']:.1f}× bound, "
                f"loader {max(loader.values()):.0f}/s = {entry['loader_over_train']:.0f}× training"
            )
    result["wall_seconds"] = time.time() - started
    result["load_average_end"] = os.getloadavg()[0]
    return result


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render_markdown(runs: dict[str, dict[str, Any]]) -> str:
    labels = [label for label in ("before", "after") if label in runs] + sorted(
        label for label in runs if label not in ("before", "after")
    )
    lines = [
        "# S4 encoder vs the machine's matmul peak",
        "",
        "Produced by `benchmarks/encoder.py` (see its docstring for the method). Every timed repeat is",
        "paired with 1024³ float32 matmuls run just before and after it; the fraction of peak is the median",
        "over repeats of (workload FLOP/s ÷ that local matmul FLOP/s), so drifts in this process's CPU share",
        "on the shared machine cancel. FLOPs per sample: FlopCounterMode (matmul/conv) + analytic FFTs,",
        "batch 32, 250-sample windows; training = forward + backward + AdamW step, batch 32.",
        "Clock: `cpu` = this process's CPU time (1 thread; time spent descheduled by other jobs is not",
        "counted, shared caches still are), `wall` = perf_counter. The loader is always timed on the wall clock.",
        "",
    ]
    for label in labels:
        result = runs[label]
        load = (
            f", load average {result['load_average_start']:.1f} → {result['load_average_end']:.1f}"
            if "load_average_start" in result
            else ""
        )
        lines.append(
            f"- **{label}**: {result['machine']}, {result['threads']} threads, "
            f"{result.get('clock', 'wall')} clock, "
            f"{'glibc allocator tuned, ' if result.get('allocator_tuned') else ''}"
            f"matmul peak {result['matmul_flops']['peak'] / 1e9:.1f} GFLOP/s at run start, "
            f"{result['wall_seconds']:.0f} s wall{load}"
        )
    lines.append("")
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("forward GFLOP/sample", lambda e: f"{e['flops']['forward_per_sample'] / 1e9:.3f}"),
        ("fwd+bwd GFLOP/sample", lambda e: f"{e['flops']['train_per_sample'] / 1e9:.3f}"),
        ("FFT share of forward FLOPs", lambda e: _pct(e["flops"]["fft_share_forward"])),
        ("local matmul peak during training (GFLOP/s)", lambda e: f"{e['local_matmul_peak'] / 1e9:.1f}"),
        ("training samples/s (batch 32)", lambda e: f"{e['train_samples_per_s']:.1f}"),
        ("training fraction of peak", lambda e: _pct(e["train_fraction_of_peak"])),
        (
            "training with torch.compile: samples/s (fraction)",
            lambda e: (
                f"{e['train_compiled_samples_per_s']:.1f} ({_pct(e['train_compiled_fraction_of_peak'])})"
                if "train_compiled_samples_per_s" in e
                else "not run"
            ),
        ),
        ("inference samples/s (4 windows)", lambda e: f"{e['infer4_samples_per_s']:.1f}"),
        ("inference fraction of peak (4)", lambda e: _pct(e["infer4_fraction_of_peak"])),
        ("inference samples/s (128 windows)", lambda e: f"{e['infer128_samples_per_s']:.1f}"),
        ("inference fraction of peak (128)", lambda e: _pct(e["infer128_fraction_of_peak"])),
        ("predict latency, WFDB → result (ms)", lambda e: f"{e['predict']['latency_ms']:.1f}"),
        ("predict FLOP-bound time (ms)", lambda e: f"{e['predict']['flop_bound_ms']:.2f}"),
        ("predict latency ÷ FLOP-bound", lambda e: f"{e['predict']['ratio_to_bound']:.2f}×"),
        (
            "predict latency, gradient-explanation fallback (ms)",
            lambda e: f"{e['predict'].get('gradient_explanation_latency_ms', float('nan')):.1f}",
        ),
        ("loader samples/s, 0 workers", lambda e: f"{e['loader_samples_per_s']['workers0']:.0f}"),
        ("loader samples/s, 2 workers", lambda e: f"{e['loader_samples_per_s']['workers2']:.0f}"),
        ("loader ÷ training (best loader)", lambda e: f"{e['loader_over_train']:.0f}×"),
    ]
    presets = sorted({name for result in runs.values() for name in result["presets"]}, key=["paper", "cpu"].index)
    for name in presets:
        lines += ["", f"## `{name}` preset", "", "| metric | " + " | ".join(labels) + " |"]
        lines.append("|---|" + "---|" * len(labels))
        for title, cell in rows:
            values = [cell(runs[label]["presets"][name]) if name in runs[label]["presets"] else "–" for label in labels]
            lines.append(f"| {title} | " + " | ".join(values) + " |")
    lines += [
        "",
        "Goals (issue 7, 2 CPU cores): training at `paper` ≥ 60 % of matmul peak; single-ECG latency",
        "≤ 1.5× its FLOP-bound time; loader ≥ 10× training samples/s. See docs/performance.md.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="name of this run in the results (before / after)")
    parser.add_argument("--presets", nargs="+", default=["paper", "cpu"], choices=["paper", "cpu"])
    parser.add_argument("--threads", type=int, default=1, help="default 1 (docs/performance.md)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, noisier)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default=None,
        help="cpu = process CPU time (default at 1 thread: robust to other jobs), wall = perf_counter",
    )
    parser.add_argument("--compile", action="store_true", help="also time training of torch.compile'd paper encoder")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results files alone")
    args = parser.parse_args()
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if clock == "cpu" and args.threads > 1:
        parser.error("--clock cpu sums the CPU time of all threads; use --clock wall with --threads > 1")
    result = run(args.presets, args.threads, args.quick, args.label, args.compile, clock)
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    json_path = RESULTS / "encoder.json"
    runs: dict[str, dict[str, Any]] = json.loads(json_path.read_text()) if json_path.exists() else {}
    runs[args.label] = result
    write_text_atomically(json_path, json.dumps(runs, indent=2) + "\n")
    write_text_atomically(RESULTS / "encoder.md", render_markdown(runs))
    print(f"wrote {json_path} and {RESULTS / 'encoder.md'}")


if __name__ == "__main__":
    main()
