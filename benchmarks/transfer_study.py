"""The transfer study (issue 15) → benchmarks/results/transfer_study.{json,md,png}.

    python benchmarks/transfer_study.py --store STORE --out RUN_DIR [--preset cpu] [--workers 2]

Arms × label fractions × replicates (each replicate its own seed and rotated test fold); every
(arm, fraction, replicate) run is a unit with its own atomic result file, so the command can be
killed at any time and rerun with the same arguments to continue. The plan — including the primary
label set — is written to RUN_DIR/study_plan.json before the first run; a rerun with different
settings into the same RUN_DIR is refused. See docs/transfer-study.md for sizing and the launch
command.

Options not given on the command line come from `--study-config YAML` (keys of
`ecgkt.train.transfer.StudyConfig`), then the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ecgkt.errors import UserError
from ecgkt.train.transfer.study import StudyConfig, run_study

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="the labelled cohort store (ecgkt build)")
    parser.add_argument("--out", type=Path, required=True, help="study folder (units, derived stores, plan)")
    parser.add_argument("--study-config", type=Path, default=None, help="YAML with StudyConfig keys")
    parser.add_argument("--preset", default=None, help="paper | cpu | smoke (default cpu)")
    parser.add_argument("--arms", default=None, help="comma-separated arms (default: all)")
    parser.add_argument("--fractions", default=None, help="comma-separated label fractions (default 0.05,0.2,1)")
    parser.add_argument("--replicates", type=int, default=None)
    parser.add_argument("--test-folds", type=int, default=None, help="test folds per replicate (default 1)")
    parser.add_argument("--pool", default=None, help="pretraining pool store (default: the training records)")
    parser.add_argument("--ceilings", default=None, help="JSON holding the ECG-only oracle ceiling")
    parser.add_argument("--ceiling-key", default=None, help="dotted key of the ceiling in --ceilings")
    parser.add_argument("--barlow-width", type=int, default=None, help="Barlow Twins projector width")
    parser.add_argument("--barlow-lambda", type=float, default=None, help="Barlow Twins λ (default 1/width)")
    parser.add_argument("--min-steps", type=int, default=None, help="minimum optimiser steps per supervised run")
    parser.add_argument("--epochs", type=int, default=None, help="override every stage's max_epochs")
    parser.add_argument("--workers", type=int, default=1, help="units trained at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where transfer_study.* are copied")
    parser.add_argument(
        "--priority",
        default=None,
        help="comma-separated arms to finish for every replicate first (scheduling only; may change on resume)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only re-aggregate the finished units of --out into the report (no training)",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="only write (or check) the study plan in --out, e.g. to measure its matched ceiling before the runs",
    )
    parser.add_argument("--max-units", type=int, default=None, help="stop after this many units (tests)")
    return parser.parse_args(argv)


def study_config(args: argparse.Namespace) -> StudyConfig:
    raw: dict[str, Any] = {}
    if args.study_config is not None:
        if not args.study_config.is_file():
            raise UserError(f"{args.study_config}: study config not found")
        raw = yaml.safe_load(args.study_config.read_text()) or {}
    if args.preset:
        raw["preset"] = args.preset
    if args.arms:
        raw["arms"] = [a.strip() for a in args.arms.split(",") if a.strip()]
    if args.fractions:
        raw["fractions"] = [float(f) for f in args.fractions.split(",")]
    for key, value in (
        ("replicates", args.replicates),
        ("test_folds", args.test_folds),
        ("pool", args.pool),
        ("ceilings", args.ceilings),
        ("ceiling_key", args.ceiling_key),
        ("min_supervised_steps", args.min_steps),
    ):
        if value is not None:
            raw[key] = value
    if args.barlow_width is not None or args.barlow_lambda is not None:
        barlow = dict(raw.get("barlow", {}))
        if args.barlow_width is not None:
            barlow["width"] = args.barlow_width
        if args.barlow_lambda is not None:
            barlow["lambda_offdiag"] = args.barlow_lambda
        raw["barlow"] = barlow
    if args.epochs is not None:
        run_config = dict(raw.get("run_config", {}))
        for section in ("pretrain", "finetune", "labs", "baseline"):
            part = dict(run_config.get(section, {}))
            part["optim"] = {**dict(part.get("optim", {})), "max_epochs": args.epochs}
            run_config[section] = part
        raw["run_config"] = run_config
    try:
        return StudyConfig.model_validate(raw)
    except ValueError as error:
        raise UserError(f"invalid study settings: {error}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        from ecgkt.train.transfer.study import set_report_options, write_reports

        if not (args.out / "study_plan.json").is_file():
            print(f"error: {args.out}: no study_plan.json; nothing to report", file=sys.stderr)
            return 2
        options = {k: v for k, v in (("ceilings", args.ceilings), ("ceiling_key", args.ceiling_key)) if v is not None}
        try:
            set_report_options(args.out, options)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        result = write_reports(args.out, args.results)
        print(f"{result['units_done']} units reported")
        print((args.out / "transfer_study.md").read_text())
        return 0
    try:
        config = study_config(args)
        if args.plan_only:
            from ecgkt.train.transfer.study import plan_study

            plan = plan_study(config, args.store, args.out)
            print(f"{args.out / 'study_plan.json'}: {len(plan['primary_labels'])} primary labels")
            return 0
        started = time.perf_counter()
        result = run_study(
            config,
            args.store,
            args.out,
            workers=args.workers,
            threads_per_worker=args.threads,
            results_dir=args.results,
            max_units=args.max_units,
            priority=[a.strip() for a in args.priority.split(",") if a.strip()] if args.priority else None,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{result['units_done']} units done; this invocation {time.perf_counter() - started:.0f} s")
    print((args.out / "transfer_study.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
