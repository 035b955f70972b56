"""The transfer study's ECG-only oracle ceiling, matched to the study → transfer_ceiling.{json,md}.

    python benchmarks/transfer_ceiling.py --study runs/study/run --synth runs/study/synth

The realism benchmark's ceiling (`ceilings.json`, 0.880) is a macro AUROC over 22 common ICD-10
prefixes on its own cohort and split; the study scores 151 primary labels on its own test folds, many
of which carry little ECG signal. A gap to a ceiling measured on other labels is not a gap. This
script measures the ceiling on exactly what the study scores: for every replicate of the study's
plan, a gradient-boosting oracle per primary label (the realism benchmark's settings, fixed before
any experiment) learns the label from the **noise-free ECG parameters the renderer drew**
(`ground_truth/records.parquet` of the synthetic cohort) plus age and sex, on the replicate's
training records (all labelled), and predicts its test records. The oracle's predictions are scored
by the study's own code on the same bootstrap draws as every arm, so "oracle − arm" is a paired
difference, and the per-replicate ceilings plug into the study's report:

    python benchmarks/transfer_study.py --store S --out RUN --report-only \
        --ceilings benchmarks/results/transfer_ceiling.json \
        --ceiling-key "macro_auroc_per_replicate.ecg_params+demographics"

It is an estimate from below of what an ECG-only model could reach (a learned oracle, finite data),
and it needs the synthetic cohort's ground truth, so it cannot exist for MIMIC. Resumable: each
replicate's predictions are written atomically to RUN/ceiling/ and reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _common import machine_facts, write_result
from ecgkt.atomic_files import replacing
from ecgkt.evaluate.ceiling import CeilingError, oracle_features, oracle_identity, oracle_predictions, store_ceiling
from ecgkt.evaluate.metrics import masked_auroc_per_label
from ecgkt.store import Store
from ecgkt.train.transfer.report import RunScores, plan_digest, pool_differences, resample_counts, score_run
from ecgkt.train.transfer.study import PLAN_FILE

RESULTS = Path(__file__).parent / "results"
NAME = "transfer_ceiling"
KEY = "ecg_params+demographics"
def _save(path: Path, probs: NDArray[np.float32], targets: NDArray[np.float32], labels: list[str], stamp: str) -> None:
    with replacing(path, suffix=".npz") as temporary:
        np.savez(temporary, probabilities=probs, targets=targets, labels=np.array(labels), stamp=stamp)


def run(study: Path, synth: Path, replicates: list[int] | None) -> dict[str, Any]:
    plan_path = study / PLAN_FILE
    if not plan_path.is_file():
        raise CeilingError(f"{plan_path}: not found; --study must be a transfer study's run folder")
    plan = json.loads(plan_path.read_text())
    config, labels = plan["config"], list(plan["primary_labels"])
    store = Store.open(Path(plan["store"]))
    names = list(store.manifest.diagnosis_labels)
    columns = [names.index(label) for label in labels]
    targets = store.diagnosis_targets()[:, columns]
    folds = store.folds
    x = oracle_features(store, synth)
    seed, n_resamples = int(config["base_seed"]), int(config["bootstrap_resamples"])
    chosen = [p for p in plan["replicates"] if replicates is None or p["replicate"] in replicates]
    per_replicate: dict[int, Any] = {}
    per_label: list[NDArray[np.float64]] = []
    for p in chosen:
        r = int(p["replicate"])
        train, test = np.isin(folds, p["train_folds"]), np.isin(folds, p["test_folds"])
        stamp = hashlib.sha256(json.dumps([labels, p, *oracle_identity()]).encode()).hexdigest()
        path = study / "ceiling" / f"ecg-oracle_r{r}.npz"
        probs: NDArray[np.float32] | None = None
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as cached:
                    if str(cached["stamp"]) == stamp:
                        probs = cached["probabilities"]
            except (OSError, ValueError, KeyError):
                probs = None  # an unreadable cache entry (e.g. a killed write elsewhere): recompute
        started = time.perf_counter()
        if probs is None:
            print(f"replicate {r}: {len(labels)} oracles on {int(train.sum())} training ECGs …", flush=True)
            probs = oracle_predictions(x, targets, train, test)
            _save(path, probs, targets[test], labels, stamp)
        scored = score_run(targets[test], probs, resample_counts(int(test.sum()), r, n_resamples, seed))
        per_replicate[r] = {"scored": scored, "seconds": round(time.perf_counter() - started, 1)}
        per_label.append(masked_auroc_per_label(targets[test], probs))
        print(f"replicate {r}: oracle macro AUROC {scored.point:.4f}", flush=True)
    return {
        "plan": plan,
        "labels": labels,
        "per_replicate": per_replicate,
        "per_label": np.nanmean(np.stack(per_label), axis=0) if per_label else np.array([]),
    }


def compare_with_arms(study: Path, measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Oracle − arm for every finished arm and fraction, paired on replicates and bootstrap draws."""
    plan = measured["plan"]
    config = plan["config"]
    score = RunScores(study, measured["labels"], int(config["bootstrap_resamples"]), int(config["base_seed"]))
    units = [json.loads(p.read_text()) for p in sorted((study / "units").glob("*/unit.json"))]
    rows = []
    for fraction in sorted({float(f) for f in config["fractions"]}):
        for arm in config["arms"]:
            runs = {
                int(u["replicate"]): u
                for u in units
                if u["kind"] == "arm" and u["arm"] == arm and float(u["fraction"]) == fraction
            }
            shared = sorted(set(runs) & set(measured["per_replicate"]))
            if not shared:
                continue
            pooled = pool_differences([(measured["per_replicate"][r]["scored"], score(runs[r])) for r in shared])
            arm_mean = float(np.mean([score(runs[r]).point for r in shared]))
            rows.append(
                {
                    "arm": arm,
                    "fraction": fraction,
                    "replicates": shared,
                    "arm_macro_auroc": arm_mean,
                    "oracle_minus_arm": pooled,
                }
            )
    return rows


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def render(result: dict[str, Any]) -> str:
    reps = result["macro_auroc_per_replicate"][KEY]
    lines = [
        "# Transfer study: the ECG-only oracle ceiling on the study's own labels and test folds",
        "",
        "Written by `benchmarks/transfer_ceiling.py` (its docstring says why and how). Oracle: gradient boosting "
        "per primary label on the noise-free ECG parameters the renderer drew + age + sex, trained on each "
        "replicate's training records (all labelled), scored on its test records with the study's code and "
        "bootstrap draws. An estimate from below of what an ECG-only model can reach here.",
        "",
        f"Study: `{result['study']}`; {result['n_primary_labels']} primary labels; replicates "
        f"{', '.join(str(r) for r in reps)}.",
        "",
        f"**Oracle macro AUROC: {_fmt(result['macro_auroc'][KEY])}** (per replicate: "
        + ", ".join(f"r{r} {_fmt(v)}" for r, v in reps.items())
        + f"). The realism benchmark's ceiling on 22 common ICD-10 prefixes is {_fmt(result['realism_ceiling'])}.",
        "",
        "Per-label oracle AUROC (mean over replicates): "
        + ", ".join(f"{k} {v}" for k, v in result["per_label_summary"].items())
        + ".",
        "",
        "## Oracle − arm (paired on replicates and test-record draws)",
        "",
        "| labelled | arm | reps | arm macro AUROC | oracle − arm | CI (records) | CI (seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["oracle_minus_arm"]:
        d = row["oracle_minus_arm"]
        seeds = f"[{_fmt(d['t_ci_low'], True)}, {_fmt(d['t_ci_high'], True)}]" if "t_ci_low" in d else "–"
        lines.append(
            f"| {row['fraction']:.0%} | {row['arm']} | {len(row['replicates'])} | {_fmt(row['arm_macro_auroc'])} "
            f"| {_fmt(d['delta'], True)} | [{_fmt(d['ci_low'], True)}, {_fmt(d['ci_high'], True)}] | {seeds} |"
        )
    lines += ["", "## Labels the oracle finds hardest and easiest", "", "| label | oracle AUROC |", "|---|---|"]
    for label, value in result["hardest"] + result["easiest"]:
        lines.append(f"| {label} | {_fmt(value)} |")
    lines += ["", f"Command: `{result['command']}`", "", f"Machine: {result['machine']['cpu']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--study", type=Path, help="the transfer study's run folder")
    target.add_argument("--store", type=Path, help="instead: one store's own split, on Table 1's terms (printed)")
    parser.add_argument("--synth", type=Path, required=True, help="the synthetic cohort the store was built from")
    parser.add_argument("--replicates", default=None, help="comma list (default: all of the plan)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where transfer_ceiling.{json,md} go")
    args = parser.parse_args(argv)
    replicates = [int(r) for r in args.replicates.split(",")] if args.replicates else None
    if args.store is not None:
        try:
            print(json.dumps({"store": str(args.store), **store_ceiling(args.store, args.synth)}))
        except CeilingError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    try:
        measured = run(args.study, args.synth, replicates)
    except CeilingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    per_rep = {str(r): v["scored"].point for r, v in measured["per_replicate"].items()}
    labels, per_label = measured["labels"], measured["per_label"]
    order = np.argsort(per_label)
    finite = per_label[np.isfinite(per_label)]
    realism = (
        json.loads((RESULTS / "ceilings.json").read_text())["macro_auroc"][KEY]
        if (RESULTS / "ceilings.json").is_file()
        else None
    )
    result: dict[str, Any] = {
        "description": "ECG-only oracle ceiling matched to the transfer study (benchmarks/transfer_ceiling.py)",
        "study": str(args.study),
        "study_plan_digest": plan_digest(measured["plan"]),
        "n_primary_labels": len(labels),
        "macro_auroc": {KEY: float(np.mean(list(per_rep.values())))},
        "macro_auroc_per_replicate": {KEY: per_rep},
        "realism_ceiling": realism,
        "per_label_auroc": {
            label: (None if not np.isfinite(v) else round(float(v), 4))
            for label, v in zip(labels, per_label, strict=True)
        },
        "per_label_summary": {
            "median": f"{np.median(finite):.3f}",
            "< 0.6": f"{int((finite < 0.6).sum())} labels",
            "≥ 0.8": f"{int((finite >= 0.8).sum())} labels",
        },
        "hardest": [(labels[i], float(per_label[i])) for i in order[:5]],
        "easiest": [(labels[i], float(per_label[i])) for i in order[::-1][:5] if np.isfinite(per_label[i])],
        "oracle_minus_arm": compare_with_arms(args.study, measured),
        "seconds_per_replicate": {str(r): v["seconds"] for r, v in measured["per_replicate"].items()},
        "command": " ".join(
            ["python", "benchmarks/transfer_ceiling.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine_facts(),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_result(args.results / f"{NAME}.json", result)
    write_result(args.results / f"{NAME}.md", render(result))
    print(f"wrote {args.results / NAME}.{{json,md}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
