"""CLI: `ecgkt predict BUNDLE INPUT…` — diagnoses, lab abnormalities and supporting labs per ECG.

INPUT is a WFDB record (`rec`, `rec.hea`), a DICOM 12-lead waveform, a `.npy`/`.npz` file, a folder
(searched recursively) or a CSV list with a `path` column. Output goes to stdout or `--out` (written
atomically): JSON (one object for a single file, an array for a batch) or CSV (one row per ECG).
Heavy imports happen inside the command so `ecgkt --help` stays fast. A bad input prints one red
line naming the file and exits with code 2; `--skip-errors` instead skips it, counts it, and goes on.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error
from ecgkt.cli_options import prediction_options

FORMATS = ("json", "csv", "fhir")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    bundle: Path = typer.Argument(..., help="Model bundle folder (from `ecgkt benchmark`).", show_default=False),
    inputs: list[Path] = typer.Argument(
        ...,
        help="ECG files (WFDB record or .hea, DICOM .dcm, .npy, .npz, JSON ECG document, GE/Philips/HL7 aECG .xml, "
        "SCP-ECG .scp, EDF .edf), folders, or CSV lists with a 'path' column.",
        show_default=False,
    ),
    output_format: str = typer.Option("json", "--format", "-f", help="json | csv | fhir (FHIR R4 Bundle)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file (atomically) instead of stdout."),
    missing_leads: str = typer.Option(
        "error", "--missing-leads", help="error | zero: fail on a missing lead, or fill it with zeros (noted)."
    ),
    sampling_rate: float | None = typer.Option(
        None, "--sampling-rate", help="Sampling rate in Hz (needed for .npy without a sidecar JSON)."
    ),
    leads: str | None = typer.Option(
        None, "--leads", help="Comma-separated lead names in the file's channel order, e.g. I,II,III,aVR,aVF,aVL,V1,…"
    ),
    units: str = typer.Option("auto", "--units", help="auto | mV | uV."),
    explanation: str | None = typer.Option(
        None,
        "--explanation",
        help="association (default) | surrogate | surrogate_centered | gradient | gradient_x_probability.",
    ),
    top_labs: int = typer.Option(5, "--top-labs", min=0, help="Supporting labs listed per positive diagnosis."),
    skip_errors: bool = typer.Option(
        False, "--skip-errors", help="Skip unreadable inputs (each reported and counted) instead of stopping."
    ),
) -> None:
    """Predict diagnoses (ICD-10) and lab abnormalities from ECGs, with the labs supporting each diagnosis."""
    from rich.console import Console

    console = Console(stderr=True)

    if output_format not in FORMATS:
        raise cli_error(f"--format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    reader_kwargs, method = prediction_options(units, missing_leads, sampling_rate, leads, explanation)

    from ecgkt.bundle import load_bundle
    from ecgkt.predict.batch import BatchOutcome, predict_many, write_output
    from ecgkt.predict.engine import Predictor
    from ecgkt.signals.readers import iter_inputs

    paths = iter_inputs(inputs)
    predictor = Predictor(load_bundle(bundle), explanation=method, top_labs=top_labs)
    single = len(inputs) == 1 and len(paths) == 1 and paths[0] == inputs[0]
    outcome: BatchOutcome = predict_many(predictor, paths, reader_kwargs, skip_errors=skip_errors, console=console)
    if not outcome.results:
        raise cli_error(f"none of the {len(paths)} input(s) could be used")
    text = write_output(outcome.results, predictor, output_format, single=single, out=out)
    if out is None:
        typer.echo(text, nl=False)
    if outcome.errors:
        console.print(
            f"[yellow]skipped {len(outcome.errors)} of {len(paths)} input(s)[/] (see the messages above)",
            highlight=False,
        )
    if out is not None:
        console.print(f"wrote {len(outcome.results)} prediction(s) to {out}", highlight=False)
