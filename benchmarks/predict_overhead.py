"""Single-ECG prediction overhead: everything in `Predictor.predict_path` except the model (issue 7).

Issue 7 wants `predict` on one 10 s ECG (4 windows, end to end from a WFDB file) within 1.5× its
FLOP-bound time. The model forward is the lead's part; this benchmark measures the rest — reading the
WFDB file, preprocessing (NaN fill, 500 → 100 Hz, clip), windowing, window averaging, calibration,
explanation, the result object — as overhead = total − model forward on the same 4 windows.

In ONE run, per preset (`cpu`, `paper`; random weights, 100 diagnoses, 90 labs, as
benchmarks/encoder.py builds them) and per explanation method (`association`, the default, and
`surrogate`; both fitted and stored in the bundle as `ecgkt calibrate` does):

- after: `Predictor.predict_path` as shipped (fast format-16 reader, cached-filter decimation,
  per-bundle precomputation, one validation of the result);
- before: the reference path reconstructed from the reference functions kept in the code —
  `wfdb_record.read_wfdb_with_wfdb` (wfdb.rdheader + rdrecord), `preprocess.resample_reference`
  (scipy resample_poly designing its filter per call), and the previous engine loop below
  (`legacy_predict`: a pydantic model per label, one sort per positive diagnosis, the surrogate's JSON
  lists converted per record). Reader assembly (lead selection, units, notes) is the current, faster
  one in both columns, so "before" slightly understates the old cost;
- model only: `model(windows)` under `torch.inference_mode`, the same 4 windows.

The three are timed round-robin (one of each per repeat) so drifts in this process's CPU share on
the shared machine hit them alike; figures are medians over repeats. The headline overhead is, per
call, its wall time minus the time that same call spent inside `model.forward` (forward hooks,
`ModelClock`): the model's own ±20 % jitter would otherwise swamp a few milliseconds. The plain
difference of medians (total − model only) is kept in the JSON (`total_minus_model_only_ms`). A stage
breakdown (read, preprocess + windows, runner, post-processing) is timed the same way. The FLOP-bound time is the
whole model's forward FLOPs for 4 windows (FlopCounterMode + analytic FFTs, `fft_flops` from
benchmarks/encoder.py) ÷ float32 matmul FLOP/s measured in this run (`matmul_peak_flops`).

Run: `.venv/bin/python benchmarks/predict_overhead.py [--presets cpu paper] [--repeats 31] [--quick]`;
writes benchmarks/results/predict_overhead.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.flop_counter import FlopCounterMode

from _common import random_bundle
from ecgkt import __version__
from ecgkt.atomic_files import write_text_atomically
from ecgkt.bundle import Bundle, EcgOnlyModel, load_bundle
from ecgkt.bundle_runner import window_average
from ecgkt.config import preset
from ecgkt.evaluate.calibration import apply_temperature
from ecgkt.explain.association import fit_association, save_association
from ecgkt.explain.supporting_labs import MethodName, RecordOutputs, SurrogateExplainer, top_supporting_labs
from ecgkt.explain.surrogate import fit_surrogate, save_surrogate
from ecgkt.export.parity import PARITY_ECGS, write_synthetic_wfdb
from ecgkt.models.config import EcgEncoderConfig
from ecgkt.predict.engine import (
    DiagnosisPrediction,
    LabPrediction,
    LabSupport,
    PredictionResult,
    Predictor,
)
from ecgkt.signals.assembly import assemble
from ecgkt.signals.preprocess import PreprocessSpec, interpolate_nans, resample_reference
from ecgkt.signals.readers import EcgInput, prepare_windows, read_ecg
from ecgkt.signals.wfdb_record import read_wfdb_with_wfdb
from ecgkt.signals.windows import plan_windows, split_windows
from encoder import ECG_WINDOWS, WINDOW, fft_flops, matmul_peak_flops

RESULTS = Path(__file__).parent / "results"
METHODS: tuple[MethodName, ...] = ("association", "surrogate")
N_DIAGNOSES, N_LABS = 100, 90


# ---- the reference ("before") path ---------------------------------------------------------------


def legacy_read(header: Path) -> EcgInput:
    """read_ecg through wfdb (the reader before the fast format-16 path)."""
    source = str(header)
    return assemble(read_wfdb_with_wfdb(header, source))


def legacy_prepare_windows(ecg: EcgInput, spec: PreprocessSpec, window: int) -> NDArray[np.float32]:
    filled, _ = interpolate_nans(ecg.signal_mv)
    signal = resample_reference(filled, ecg.sampling_rate_hz, spec.sampling_rate_hz)
    np.clip(signal, -spec.clip_mv, spec.clip_mv, out=signal)
    return split_windows(signal, plan_windows(signal.shape[1], window))


def _legacy_scores(predictor: Predictor, outputs: RecordOutputs) -> NDArray[np.float32]:
    explainer = predictor.explainer
    assert explainer is not None
    if isinstance(explainer, SurrogateExplainer):  # converted its JSON lists on every call
        return explainer.surrogate.contributions(outputs.lab_probability, centered=explainer.centered)
    return explainer.scores(outputs)


def legacy_predict(predictor: Predictor, ecg: EcgInput) -> PredictionResult:
    """The engine's predict loop before this work: one pydantic model per label, one sort per diagnosis."""
    manifest = predictor.manifest
    windows = legacy_prepare_windows(ecg, predictor.spec, manifest.preprocessing.window_samples)
    diag_logits, lab_logits = predictor.runner(windows)
    raw_diag, raw_lab = window_average(diag_logits), window_average(lab_logits)
    diag_prob = apply_temperature(raw_diag, manifest.temperature_diagnosis)
    lab_prob = apply_temperature(raw_lab, manifest.temperature_lab)
    positive_diag = diag_prob >= predictor.diagnosis_thresholds
    support_scores = None
    if predictor.explainer is not None and positive_diag.any():
        outputs = RecordOutputs(lab_probability=raw_lab[None, :], diagnosis_probability=raw_diag[None, :])
        support_scores = _legacy_scores(predictor, outputs)[0]
    diagnoses = []
    for k, code in enumerate(manifest.diagnosis_labels):
        supporting: list[LabSupport] = []
        if support_scores is not None and positive_diag[k]:
            supporting = [
                LabSupport(
                    label=manifest.lab_labels[s.lab_index], probability=float(lab_prob[s.lab_index]), score=s.score
                )
                for s in top_supporting_labs(support_scores[k], predictor.top_labs)
            ]
        diagnoses.append(
            DiagnosisPrediction(
                code=code,
                title=manifest.diagnosis_titles.get(code, ""),
                probability=float(diag_prob[k]),
                threshold=float(predictor.diagnosis_thresholds[k]),
                positive=bool(positive_diag[k]),
                validation_auroc=_finite(manifest.validation_auroc_diagnosis.get(code)),
                supporting_labs=supporting,
            )
        )
    diagnoses.sort(key=lambda d: d.probability, reverse=True)
    labs = [
        LabPrediction(
            label=label,
            probability=float(lab_prob[p]),
            threshold=float(predictor.lab_thresholds[p]),
            positive=bool(lab_prob[p] >= predictor.lab_thresholds[p]),
            validation_auroc=_finite(manifest.validation_auroc_lab.get(label)),
        )
        for p, label in enumerate(manifest.lab_labels)
    ]
    return PredictionResult(
        source=ecg.source,
        ecgkt_version=__version__,
        n_windows=int(windows.shape[0]),
        notes=[*ecg.notes, *predictor._model_notes()],
        diagnoses=diagnoses,
        labs=labs,
    )


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


# ---- setup ----------------------------------------------------------------------------------------


def make_bundle(config: EcgEncoderConfig, folder: Path) -> Path:
    """A random-weight bundle with both fitted explanations (their cost does not depend on the fit)."""
    diagnosis_labels = [f"D{index:03d}" for index in range(N_DIAGNOSES)]
    lab_labels = [f"L{index:02d}_high" for index in range(N_LABS)]
    bundle = random_bundle(
        folder / f"bundle-{config.d_model}",
        encoder=config,
        diagnosis_labels=diagnosis_labels,
        lab_labels=lab_labels,
        head_hidden=[256],
        note="random weights: overhead benchmark only",
    )
    rng = np.random.default_rng(0)
    surrogate = fit_surrogate(rng.random((200, N_LABS)), rng.random((200, N_DIAGNOSES)), diagnosis_labels, lab_labels)
    save_surrogate(bundle, surrogate)
    diagnosis_targets = (rng.random((2000, N_DIAGNOSES)) < 0.2).astype(np.float64)
    lab_targets = (rng.random((2000, N_LABS)) < 0.3).astype(np.float64)
    save_association(bundle, fit_association(diagnosis_targets, lab_targets, diagnosis_labels, lab_labels))
    return bundle


def forward_flops(model: EcgOnlyModel, config: EcgEncoderConfig) -> float:
    """The whole model's forward FLOPs on 4 windows, counted as benchmarks/encoder.py counts them."""
    x = torch.randn(ECG_WINDOWS, config.in_channels, WINDOW)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    fft_forward, _ = fft_flops(model.encoder, ECG_WINDOWS, WINDOW)
    return float(counter.get_total_flops() + fft_forward)


# ---- timing ---------------------------------------------------------------------------------------


class ModelClock:
    """Seconds spent inside the model's forward, via forward hooks on the bundle's `EcgOnlyModel`.

    On a shared 2-core machine the model's own time varies by ±20 % between calls, far more than the
    few milliseconds of overhead; subtracting a separately measured model time would measure that
    noise. The clock attributes each call's time exactly: overhead = that call's total − the time the
    same call spent inside `model.forward`.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._started = 0.0
        model.register_forward_pre_hook(self._start)
        model.register_forward_hook(self._stop)

    def _start(self, *_: object) -> None:
        self._started = time.perf_counter()

    def _stop(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._started


@dataclass
class Samples:
    """Per-repeat wall seconds of one callable and the model seconds inside each call."""

    wall: list[float] = field(default_factory=list)
    model: list[float] = field(default_factory=list)

    def median_ms(self) -> float:
        return 1000 * statistics.median(self.wall)

    def model_ms(self) -> float:
        return 1000 * statistics.median(self.model)

    def overhead_ms(self) -> float:
        """Median over calls of (wall − model time of the same call)."""
        return 1000 * statistics.median(w - m for w, m in zip(self.wall, self.model, strict=True))


def round_robin(
    runs: dict[str, Callable[[], object]], clock: ModelClock, repeats: int, warmup: int = 3
) -> dict[str, Samples]:
    """Each callable timed once per repeat, one after the other, so load drifts hit all alike."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    samples = {name: Samples() for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            clock.seconds = 0.0
            started = time.perf_counter()
            run()
            samples[name].wall.append(time.perf_counter() - started)
            samples[name].model.append(clock.seconds)
    return samples


def measure(config_name: str, folder: Path, repeats: int) -> dict[str, Any]:
    config = preset(config_name).encoder
    bundle_path = make_bundle(config, folder)
    header = write_synthetic_wfdb(folder / f"wfdb-{config_name}", PARITY_ECGS[0], record_name="ecg", seed=3)
    bundle = load_bundle(bundle_path)
    model = bundle.model.eval()
    flops = forward_flops(model, config)
    clock = ModelClock(model)
    batch = torch.from_numpy(prepare_windows(read_ecg(header)))

    def model_only() -> None:
        with torch.inference_mode():
            model(batch)

    entry: dict[str, Any] = {"encoder": config.model_dump(), "forward_flops_4_windows": flops, "methods": {}}
    for method in METHODS:
        entry["methods"][method] = measure_method(bundle, method, header, model_only, clock, repeats)
        m = entry["methods"][method]
        print(
            f"[{config_name} / {method}] total before {m['total_ms']['before']:.2f} ms, "
            f"after {m['total_ms']['after']:.2f} ms, model only {m['model_only_ms']:.2f} ms; overhead "
            f"{m['overhead_ms']['before']:.2f} → {m['overhead_ms']['after']:.2f} ms "
            f"(results identical: {m['identical_results']})",
            flush=True,
        )
    return entry


def measure_method(
    bundle: Bundle,
    method: MethodName,
    header: Path,
    model_only: Callable[[], None],
    clock: ModelClock,
    repeats: int,
) -> dict[str, Any]:
    """Totals, overheads and the stage breakdown for one explanation method."""
    predictor = Predictor(bundle, explanation=method)
    identical = legacy_predict(predictor, legacy_read(header)) == predictor.predict_path(header)
    ecg = read_ecg(header)
    windows = prepare_windows(ecg, predictor.spec, WINDOW)
    logits = predictor.runner(windows)

    def cached_runner(_: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return logits

    cached = Predictor(bundle, runner=cached_runner, explanation=method)
    totals = round_robin(
        {
            "after": lambda: predictor.predict_path(header),
            "before": lambda: legacy_predict(predictor, legacy_read(header)),
            "model": model_only,
        },
        clock,
        repeats,
    )
    stages = round_robin(
        {
            "read_after": lambda: read_ecg(header),
            "read_before": lambda: legacy_read(header),
            "windows_after": lambda: prepare_windows(ecg, predictor.spec, WINDOW),
            "windows_before": lambda: legacy_prepare_windows(ecg, predictor.spec, WINDOW),
            "runner": lambda: predictor.runner(windows),
            "predict_cached_after": lambda: cached.predict(ecg),
            "predict_cached_before": lambda: legacy_predict(cached, ecg),
        },
        clock,
        repeats,
    )

    def post(which: str) -> float:
        return stages[f"predict_cached_{which}"].median_ms() - stages[f"windows_{which}"].median_ms()

    return {
        "identical_results": bool(identical),
        "total_ms": {"before": totals["before"].median_ms(), "after": totals["after"].median_ms()},
        "model_only_ms": totals["model"].median_ms(),
        "model_in_call_ms": {"before": totals["before"].model_ms(), "after": totals["after"].model_ms()},
        "overhead_ms": {"before": totals["before"].overhead_ms(), "after": totals["after"].overhead_ms()},
        "total_minus_model_only_ms": {
            "before": totals["before"].median_ms() - totals["model"].median_ms(),
            "after": totals["after"].median_ms() - totals["model"].median_ms(),
        },
        "stages_ms": {
            "read": {"before": stages["read_before"].median_ms(), "after": stages["read_after"].median_ms()},
            "preprocess_windows": {
                "before": stages["windows_before"].median_ms(),
                "after": stages["windows_after"].median_ms(),
            },
            "runner_wrapper": stages["runner"].overhead_ms(),
            "post": {"before": post("before"), "after": post("after")},
        },
    }


# ---- report ---------------------------------------------------------------------------------------


def render_markdown(result: dict[str, Any]) -> str:
    peak = result["matmul_peak_flops"]
    lines = [
        "# Single-ECG prediction overhead (everything but the model)",
        "",
        "Produced by `benchmarks/predict_overhead.py` (method in its docstring). `Predictor.predict_path` on",
        "one 10 s, 500 Hz, 12-lead MIMIC-format WFDB record (format 16) → 4 windows; random-weight bundle",
        f"with {N_DIAGNOSES} diagnoses and {N_LABS} lab labels. **before** = the reference functions (wfdb reader,",
        "scipy resample_poly designing its filter per call, the previous engine loop); **after** = the shipped",
        "path; both give identical results (last column). **overhead** = median over calls of (the call's wall",
        "time − the time the same call spent inside `model.forward`, from forward hooks), so the model's",
        "±20 % jitter on this shared machine does not leak into it. Model only = `model(windows)` alone.",
        "",
        f"- {result['machine']}, {result['threads']} torch thread(s), {result['repeats']} repeats per figure, "
        f"round-robin; matmul peak {peak / 1e9:.1f} GFLOP/s (best of run start / end); "
        f"load average {result['load_average']}; {result['wall_seconds']:.0f} s wall",
        "",
        "| preset | explanation | total before (ms) | total after (ms) | model only (ms) | FLOP-bound (ms) "
        "| overhead before (ms) | overhead after (ms) | speed-up | overhead after ÷ FLOP-bound "
        "| total after ÷ FLOP-bound | identical results |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, entry in result["presets"].items():
        bound = entry["flop_bound_ms"]
        for method, m in entry["methods"].items():
            before, after = m["overhead_ms"]["before"], m["overhead_ms"]["after"]
            lines.append(
                f"| `{name}` | {method} | {m['total_ms']['before']:.2f} | {m['total_ms']['after']:.2f} "
                f"| {m['model_only_ms']:.2f} | {bound:.2f} | {before:.2f} | {after:.2f} | {before / after:.1f}× "
                f"| {after / bound:.2f}× | {m['total_ms']['after'] / bound:.2f}× "
                f"| {'yes' if m['identical_results'] else 'NO'} |"
            )
    bound_paper = result.get("paper_flop_bound_ms")
    if bound_paper is not None:
        lines += [
            "",
            f"Overhead as a fraction of the `paper` preset's FLOP-bound time ({bound_paper:.2f} ms for 4 windows",
            "at this run's matmul peak; the issue's budget for everything above the bound is 50 %):",
            "",
            "| preset | explanation | overhead before | overhead after |",
            "|---|---|---:|---:|",
        ]
        for name, entry in result["presets"].items():
            for method, m in entry["methods"].items():
                lines.append(
                    f"| `{name}` | {method} | {100 * m['overhead_ms']['before'] / bound_paper:.1f} % "
                    f"| {100 * m['overhead_ms']['after'] / bound_paper:.1f} % |"
                )
    lines += [
        "",
        "Where the overhead goes (ms, medians; post = window averaging, calibration, explanation and the",
        "result object = `predict` with precomputed logits − preprocessing; runner wrapper = `torch_runner`",
        "time outside `model.forward`, the same code before and after):",
        "",
        "| preset | explanation | read WFDB → EcgInput | preprocess + windows | post | runner wrapper |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, entry in result["presets"].items():
        for method, m in entry["methods"].items():
            stages = m["stages_ms"]
            cells = " | ".join(
                f"{stages[stage]['before']:.2f} → {stages[stage]['after']:.2f}"
                for stage in ("read", "preprocess_windows", "post")
            )
            lines.append(f"| `{name}` | {method} | {cells} | {stages['runner_wrapper']:.2f} |")
    lines += [
        "",
        "Goal (issue 7): single-ECG latency ≤ 1.5× its FLOP-bound time. The model itself is the lead's part",
        "(src/ecgkt/models); the overhead is what `signals`, `predict` and `explain` add on top of it.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"], choices=["cpu", "paper"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=31, help="≥ 15 for the committed results")
    parser.add_argument("--quick", action="store_true", help="7 repeats: a smoke run, noisier")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results files alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 7 if args.quick else args.repeats
    started = time.time()
    peak = matmul_peak_flops(repeats=10 if args.quick else 20)["peak"]
    print(f"matmul peak ({args.threads} threads): {peak / 1e9:.1f} GFLOP/s", flush=True)
    load_start = os.getloadavg()[0]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared), torch {torch.__version__}",
        "threads": args.threads,
        "repeats": repeats,
        "matmul_peak_flops": peak,
        "presets": {},
    }
    with tempfile.TemporaryDirectory(prefix="ecgkt-overhead-") as scratch:
        for name in args.presets:
            result["presets"][name] = measure(name, Path(scratch), repeats)
    # The machine's peak is the best it reached; a busy moment at the start would understate it.
    peak = max(peak, matmul_peak_flops(repeats=10 if args.quick else 20)["peak"])
    result["matmul_peak_flops"] = peak
    result["load_average"] = f"{load_start:.1f} → {os.getloadavg()[0]:.1f} (2 cores)"
    for entry in result["presets"].values():
        entry["flop_bound_ms"] = 1000 * entry["forward_flops_4_windows"] / peak
    if "paper" in result["presets"]:
        result["paper_flop_bound_ms"] = result["presets"]["paper"]["flop_bound_ms"]
    result["wall_seconds"] = time.time() - started
    markdown = render_markdown(result)
    print(markdown)
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    write_text_atomically(RESULTS / "predict_overhead.json", json.dumps(result, indent=2) + "\n")
    write_text_atomically(RESULTS / "predict_overhead.md", markdown)
    print(f"wrote {RESULTS / 'predict_overhead.md'} and .json")


if __name__ == "__main__":
    main()
