"""Barlow Twins projector width (and λ ≈ 1/width) beside the transfer study → barlow_width.{json,md}.

    python benchmarks/barlow_width.py --study runs/study/run --out runs/barlow_width --widths 32,512 \
        --fractions 0.2 [--replicates 0]

The transfer study's JE Barlow Twins arm uses one setting (width 128, λ = 1/128). This script trains
the same arm with other widths on the study's own plan — same replicate folds, seeds, label fractions,
pretraining pool, schedule and primary labels — by running the study's unit runner with only
`barlow.width` changed, in its own folder. Each run is then compared, paired on the same test records
and bootstrap draws, with the study's signal-only and width-128 runs of the same replicate and
fraction (which must have finished). Every run is a resumable unit: rerun the command to continue.

The widths are a sensitivity check chosen before any run (a factor 4 either side of 128), not a
tuning: the study's arm keeps its a-priori setting whatever this shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine_facts, write_result
from ecgkt.errors import UserError
from ecgkt.train.transfer.report import RunScores, pool_differences, verdict, widest_interval
from ecgkt.train.transfer.study import (
    PLAN_FILE,
    StudyConfig,
    StudyPaths,
    Unit,
    arm_key,
    pretrain_key,
    run_unit,
)

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", type=Path, required=True, help="the transfer study's folder (its --out)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the width runs")
    parser.add_argument("--widths", default="32,512", help="comma-separated projector widths (λ = 1/width)")
    parser.add_argument("--fractions", default="0.2", help="comma-separated label fractions of the study")
    parser.add_argument("--replicates", default="0", help="comma-separated replicates of the study")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _record(paths: StudyPaths, key: str) -> dict[str, Any] | None:
    file = paths.unit_file(key)
    return json.loads(file.read_text()) if file.is_file() else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    plan_file = args.study / PLAN_FILE
    if not plan_file.is_file():
        raise UserError(f"{plan_file}: not found; --study must be a transfer study folder")
    plan = json.loads(plan_file.read_text())
    base = StudyConfig.model_validate(plan["config"])
    study = StudyPaths(args.study, Path(plan["store"]))
    widths = [int(w) for w in args.widths.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    replicates = [int(r) for r in args.replicates.split(",")]
    needed = [arm_key(a, f, r) for a in ("signal", "je-barlow") for f in fractions for r in replicates]
    missing = [key for key in needed if _record(study, key) is None]
    if missing:
        raise UserError(f"{args.study}: the study has not finished {missing}; they are the comparison")
    score = RunScores(args.study, plan["primary_labels"], base.bootstrap_resamples, base.base_seed)
    rows: list[dict[str, Any]] = []
    for width in widths:
        config = base.model_copy(update={"barlow": base.barlow.model_copy(update={"width": width})})
        paths = StudyPaths(args.out / f"width{width}", study.store)
        for r in replicates:
            pretrain = Unit("pretrain", "je-barlow", r)
            if _record(paths, pretrain.key) is None:
                print(f"width {width}: {pretrain.key}", flush=True)
                run_unit(config, plan, paths, pretrain)
            for fraction in fractions:
                unit = Unit("arm", "je-barlow", r, fraction, (pretrain_key("je-barlow", r),))
                if _record(paths, unit.key) is None:
                    print(f"width {width}: {unit.key}", flush=True)
                    run_unit(config, plan, paths, unit)
        for fraction in fractions:
            runs = {r: _record(paths, arm_key("je-barlow", fraction, r)) for r in replicates}
            signal = {r: _record(study, arm_key("signal", fraction, r)) for r in replicates}
            default = {r: _record(study, arm_key("je-barlow", fraction, r)) for r in replicates}
            scored = {
                r: score({**record, "unit": f"width{width}_{record['unit']}"}) for r, record in runs.items() if record
            }
            vs_signal = pool_differences([(scored[r], score(signal[r])) for r in replicates if signal[r]])
            vs_default = pool_differences([(scored[r], score(default[r])) for r in replicates if default[r]])
            pretrain_record = _record(paths, pretrain_key("je-barlow", replicates[0])) or {}
            rows.append(
                {
                    "width": width,
                    "lambda": config.barlow.resolved_lambda,
                    "fraction": fraction,
                    "replicates": replicates,
                    "macro_auroc": sum(s.point for s in scored.values()) / len(scored),
                    "vs_signal": vs_signal,
                    "vs_width_128": vs_default,
                    "pretrain_seconds": pretrain_record.get("wall_seconds"),
                }
            )
    for fraction in fractions:  # the study's own setting, for the table
        study_runs = [_record(study, arm_key("je-barlow", fraction, r)) for r in replicates]
        signal_runs = [_record(study, arm_key("signal", fraction, r)) for r in replicates]
        rows.append(
            {
                "width": base.barlow.width,
                "lambda": base.barlow.resolved_lambda,
                "fraction": fraction,
                "replicates": replicates,
                "macro_auroc": sum(score(run_).point for run_ in study_runs if run_) / len(replicates),
                "vs_signal": pool_differences(
                    [(score(a), score(b)) for a, b in zip(study_runs, signal_runs, strict=True) if a and b]
                ),
                "vs_width_128": None,
                "pretrain_seconds": (_record(study, pretrain_key("je-barlow", replicates[0])) or {}).get(
                    "wall_seconds"
                ),
                "study_setting": True,
            }
        )
    return {"rows": rows, "study": str(args.study), "machine": machine_facts(), "threads": args.threads}


def _ci(pooled: dict[str, Any] | None) -> str:
    if not pooled:
        return "–"
    low, high = widest_interval(pooled)
    return f"{pooled['delta']:+.3f} [{low:+.3f}, {high:+.3f}] ({verdict(pooled)})"


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Barlow Twins projector width (λ = 1/width), on the transfer study's plan",
        "",
        f"Study `{result['study']}`; the same replicate folds, seeds, pool, schedule and primary labels; only the "
        "projector width (hidden = output) and λ change. Δ with the wider 95 % interval (records; seeds from 2 "
        "replicates on) and its verdict. The study's arm keeps width 128 whatever this shows (chosen a priori).",
        "",
        "| width | λ | labelled | replicates | macro AUROC | Δ vs signal-only | Δ vs width 128 | pretraining s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(result["rows"], key=lambda r: (r["fraction"], r["width"])):
        mark = " (study)" if row.get("study_setting") else ""
        lines.append(
            f"| {row['width']}{mark} | {row['lambda']:.4g} | {row['fraction']:.0%} | {len(row['replicates'])} "
            f"| {row['macro_auroc']:.3f} | {_ci(row['vs_signal'])} | {_ci(row['vs_width_128'])} "
            f"| {row['pretrain_seconds'] or '–'} |"
        )
    machine = result["machine"]
    lines += ["", f"Machine: {json.dumps(machine)}; {result['threads']} torch thread(s), beside the study.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        result = run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_result(args.results / "barlow_width.json", result)
    markdown = render(result)
    write_result(args.results / "barlow_width.md", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
