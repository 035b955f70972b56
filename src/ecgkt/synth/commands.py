"""`ecgkt synth`: generate a synthetic cohort in the MIMIC file layouts and print what was made."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ecgkt.synth.cohort import CohortSummary


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Folder to write the cohort into (must be empty or new)."),
        patients: int = typer.Option(1000, "--patients", help="Number of patients (each has ≥1 ED visit)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; identical seeds give identical files."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output folder."),
        workers: int | None = typer.Option(None, "--workers", help="Worker processes for ECG rendering "
                                           "(default: number of CPUs, at most 8)."),
    ) -> None:
        """Generate a synthetic cohort: MIMIC-IV hosp, MIMIC-IV-ED, MIMIC-IV-ECG and its ground truth."""
        from rich.console import Console

        from ecgkt.synth.cohort import generate_cohort
        console = Console()
        summary = generate_cohort(out, patients, seed, overwrite=overwrite, workers=workers)
        print_summary(console, summary)


def print_summary(console: Console, summary: CohortSummary) -> None:
    """A two-part Rich summary: counts and timing, then the prevalence of each latent state."""
    from rich.table import Table

    counts = Table(title=f"Synthetic cohort written to {summary.out}", show_header=False)
    counts.add_column("what")
    counts.add_column("count", justify="right")
    rows = [
        ("patients", f"{summary.patients:,}"), ("ED stays (visits)", f"{summary.visits:,}"),
        ("hospital admissions", f"{summary.admissions:,}"), ("ECG records", f"{summary.ecgs:,}"),
        ("  within 90 min of arrival", f"{summary.ecgs_in_window:,}"),
        ("  later in the stay", f"{summary.ecgs_later_in_stay:,}"),
        ("  outside any stay", f"{summary.ecgs_outside_stays:,}"),
        ("labevents rows", f"{summary.labevents_rows:,}"), ("vitalsign rows", f"{summary.vitalsign_rows:,}"),
        ("diagnosis rows (ED + hospital)", f"{summary.diagnosis_rows:,}"),
        ("seed / workers", f"{summary.seed} / {summary.workers}"),
        ("time", f"{summary.seconds:.1f} s ({summary.records_per_second:.0f} records/s overall)"),
    ]
    for what, count in rows:
        counts.add_row(what, count)
    console.print(counts)
    prevalence = Table(title="Latent states (share of visits)")
    prevalence.add_column("state")
    prevalence.add_column("prevalence", justify="right")
    for name, share in summary.prevalence.items():
        prevalence.add_row(name, f"{100 * share:.1f} %")
    console.print(prevalence)
