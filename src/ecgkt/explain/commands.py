"""CLI: `ecgkt calibrate BUNDLE STORE` and `ecgkt explain-eval BUNDLE STORE [--ground-truth DIR]`.

Heavy imports stay inside the commands so `ecgkt --help` stays fast. A bundle, store or ground truth
that cannot be used prints one red line naming it and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
    app.command("explain-eval")(explain_eval)


def calibrate(
    bundle: Path = typer.Argument(
        ..., help="Model bundle folder (rewritten in place, atomically).", show_default=False
    ),
    store: Path = typer.Argument(..., help="The dataset store the bundle was trained on.", show_default=False),
    rule: str = typer.Option("youden", "--rule", help="Threshold rule: youden (default) | f1."),
    seed: int = typer.Option(0, "--seed", help="Seed of the surrogate's cross-validation folds."),
    no_surrogate: bool = typer.Option(False, "--no-surrogate", help="Skip fitting the explanation surrogate."),
    ground_truth: Path | None = typer.Option(
        None, "--ground-truth", help="`ecgkt synth` ground_truth folder: choose the default explanation on it."
    ),
) -> None:
    """Fit temperatures, per-label thresholds and the explanation surrogate on the validation fold."""
    if rule not in ("youden", "f1"):
        raise cli_error(f"--rule must be youden or f1, got {rule!r}")
    import torch
    from rich.console import Console
    from rich.table import Table

    from ecgkt.evaluate.calibration import ThresholdRule
    from ecgkt.explain.calibrate_bundle import REPORT_FILE

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    threshold_rule: ThresholdRule = "youden" if rule == "youden" else "f1"
    from ecgkt.explain.bundle_calibration import calibrate_for_release

    release = calibrate_for_release(
        bundle, store, ground_truth, rule=threshold_rule, seed=seed, surrogate=not no_surrogate
    )
    summary = release.calibration
    table = Table(title=f"Calibration on {summary.n_validation} validation records ({summary.n_test} test)")
    for column in ("head", "temperature", "ECE val before→after", "ECE test before→after", "fitted thresholds"):
        table.add_column(column)
    for name, head in (("diagnosis", summary.diagnosis), ("lab", summary.lab)):
        table.add_row(
            name,
            f"{head.temperature:.3f}",
            f"{_num(head.ece_validation_before)} → {_num(head.ece_validation_after)}",
            f"{_num(head.ece_test_before)} → {_num(head.ece_test_after)}",
            str(head.n_positive_thresholds),
        )
    console = Console()
    console.print(table)
    if summary.surrogate_median_cv_r2 is not None:
        console.print(
            f"explanation surrogate: median cross-validated R² {summary.surrogate_median_cv_r2:.3f}, "
            f"{summary.surrogate_mean_labs_used:.1f} labs per diagnosis on average",
            highlight=False,
        )
    console.print(f"updated {Path(bundle) / 'bundle.json'} and wrote {Path(bundle) / REPORT_FILE}", highlight=False)
    console.print(f"explanation shown: {release.default_method} — {release.reason}", highlight=False)


def explain_eval(
    bundle: Path = typer.Argument(..., help="Model bundle folder.", show_default=False),
    store: Path = typer.Argument(..., help="The dataset store the bundle was trained on.", show_default=False),
    ground_truth: Path | None = typer.Option(
        None, "--ground-truth", help="`ecgkt synth` ground_truth folder (or its graph.json) for precision@k."
    ),
    split: str = typer.Option("test", "--split", help="Fold the explanations are scored on: test | val."),
    max_records: int = typer.Option(2000, "--max-records", min=1, help="Seeded subsample of the split."),
    seed: int = typer.Option(0, "--seed", help="Seed of subsampling, tie-breaking and the random baseline."),
    out: Path | None = typer.Option(None, "--out", help="Write the full evaluation as JSON (atomically)."),
) -> None:
    """Score explanation methods against the synthetic ground truth (precision@k, MAP) and report fidelity."""
    if split not in ("test", "val"):
        raise cli_error(f"--split must be test or val, got {split!r}")
    import torch

    from ecgkt.explain.evaluation import evaluate_explanations
    from ecgkt.explain.report_table import evaluation_markdown, write_json

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    evaluation = evaluate_explanations(
        bundle,
        store,
        ground_truth,
        split="test" if split == "test" else "val",
        max_records=max_records,
        seed=seed,
    )
    typer.echo(evaluation_markdown(evaluation))
    if out is not None:
        write_json(out, evaluation)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
