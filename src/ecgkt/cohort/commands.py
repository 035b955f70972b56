"""`ecgkt build`: the command line around `build_store`. Heavy imports stay inside the command."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(
    out: Path = typer.Option(..., "--out", help="Store folder to create (written to OUT.partial, then renamed)."),
    ecg: Path | None = typer.Option(
        None, "--ecg", help="MIMIC-IV-ECG folder (record_list.csv, files/).", file_okay=False, dir_okay=True
    ),
    hosp: Path | None = typer.Option(
        None, "--hosp", help="MIMIC-IV hosp folder (labevents.csv.gz, ...).", file_okay=False, dir_okay=True
    ),
    ed: Path | None = typer.Option(
        None, "--ed", help="MIMIC-IV-ED ed folder (edstays.csv.gz, ...).", file_okay=False, dir_okay=True
    ),
    synthetic: Path | None = typer.Option(
        None,
        "--synthetic",
        help="Root written by `ecgkt synth --out ROOT` (instead of --ecg/--hosp/--ed).",
        file_okay=False,
        dir_okay=True,
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes reading WFDB records."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold assignment."),
    min_label_count: int | None = typer.Option(
        None, "--min-label-count", min=1, help="Absolute minimum positives per diagnosis label (paper: 230)."
    ),
    min_label_fraction: float = typer.Option(
        0.005,
        "--min-label-fraction",
        min=0.0,
        max=0.999,
        help="Relative minimum (fraction of records, at least 10) when --min-label-count is not given.",
    ),
    lab_min_positives: int = typer.Option(
        10, "--lab-label-min-positives", min=0, help="Lab label kept with >= this many positives in val and test."
    ),
    lab_min_negatives: int = typer.Option(
        10, "--lab-label-min-negatives", min=0, help="Lab label kept with >= this many negatives in val and test."
    ),
    lab_outlier_rule: str = typer.Option(
        "mds-ed", "--lab-outlier-rule", help="Per-lab outlier cleaning: 'mds-ed' (MDS-ED's limits) or 'none'."
    ),
    pretrain_pool: bool = typer.Option(
        False,
        "--pretrain-pool",
        help="Build the pretraining pool instead (every ECG with tabular data in its window; "
        "see ecgkt.cohort.pretrain_pool).",
    ),
    labelled_store: Path | None = typer.Option(
        None, "--labelled-store", help="With --pretrain-pool: the labelled store whose folds pool.parquet records."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store at --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Build the emergency-department cohort store (MDS-ED protocol) from MIMIC folders.

    A killed build resumes where it stopped when run again with the same inputs and settings.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from ecgkt.cohort.config import BuildConfig
    from ecgkt.cohort.pipeline import build_store
    from ecgkt.errors import UserError
    from ecgkt.mimic.layout import MimicFolders
    from ecgkt.store import StoreError

    console = Console(stderr=True)

    if synthetic is not None:
        if any(p is not None for p in (ecg, hosp, ed)):
            raise cli_error("pass either --synthetic ROOT or --ecg/--hosp/--ed, not both")
        folders = MimicFolders.from_synthetic_root(synthetic)
    else:
        missing = [name for name, value in (("--ecg", ecg), ("--hosp", hosp), ("--ed", ed)) if value is None]
        if missing:
            raise cli_error(f"missing {', '.join(missing)} (or pass --synthetic ROOT for a synthetic cohort)")
        assert ecg is not None and hosp is not None and ed is not None
        folders = MimicFolders(ecg, hosp, ed)
    try:
        config = BuildConfig(
            workers=workers,
            seed=seed,
            min_label_count=min_label_count,
            min_label_fraction=min_label_fraction,
            lab_label_min_positives=lab_min_positives,
            lab_label_min_negatives=lab_min_negatives,
            lab_outlier_rule=lab_outlier_rule,  # type: ignore[arg-type]  # validated by BuildConfig
        )
        if pretrain_pool:
            from ecgkt.cohort.pretrain_pool import build_pretrain_pool

            store = build_pretrain_pool(folders, out, config, labelled_store=labelled_store, overwrite=overwrite,
                                        progress=not quiet)
        else:
            store = build_store(folders, out, config, overwrite=overwrite, progress=not quiet, console=console)
    except (UserError, StoreError) as error:  # BuildInputError, BuildWriteError, ...
        raise cli_error(str(error)) from None
    except ValidationError as error:
        raise cli_error(f"invalid option: {error.errors()[0]['msg']}") from None
    _print_summary(store, console)


def _print_summary(store: Path, console: object) -> None:
    from rich.console import Console
    from rich.table import Table

    assert isinstance(console, Console)
    report = json.loads((store / "build_report.json").read_text())
    counts = Table(title=f"Store {store}", show_header=False)
    for name, value in report["counts"].items():
        counts.add_row(name, f"{value:,}")
    counts.add_row("build time", f"{report['seconds']:.1f} s" + (" (resumed)" if report.get("resumed") else ""))
    console.print(counts)
    if report["skips"]:
        skips = Table(title="Skipped / repaired (details in build_report.json)")
        for column in ("rule", "action", "count", "first example"):
            skips.add_column(column, overflow="fold")
        for key, entry in report["skips"].items():
            example = entry["examples"][0] if entry["examples"] else ""
            skips.add_row(key, entry["action"], f"{entry['count']:,}", example)
        console.print(skips)
    console.print(f"cohort report: {store / 'cohort_report.md'}")
    for warning in report.get("warnings", []):  # also shown live during the build (unless --quiet)
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
