"""CLI: `ecgkt predict BUNDLE INPUT…` — diagnoses, lab abnormalities and supporting labs per ECG.

INPUT is a WFDB record (`rec`, `rec.hea`), a DICOM 12-lead waveform, a `.npy`/`.npz` file, a folder
(searched recursively) or a CSV list with a `path` column. Output goes to stdout or `--out` (written
atomically): JSON (one object for a single file, an array for a batch) or CSV (one row per ECG).
Heavy imports happen inside the command so `ecgkt --help` stays fast. A bad input prints one red
line naming the file and exits with code 2; `--skip-errors` instead skips it, counts it, and goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ecgkt.cli_errors import cli_error

if TYPE_CHECKING:
    from ecgkt.explain.supporting_labs import MethodName

FORMATS = ("json", "csv", "fhir")


def prediction_options(
    units: str, missing_leads: str, sampling_rate: float | None, leads: str | None, explanation: str | None
) -> tuple[dict[str, Any], MethodName | None]:
    """Validate the options `predict` and `report` share: `read_ecg` keywords and the explanation method.

    Raises ValueError naming the option, so both commands report bad options the same way.
    """
    from ecgkt.predict.engine import prediction_method

    reader_kwargs = reader_options(units, missing_leads, sampling_rate, leads)
    try:
        return reader_kwargs, prediction_method(explanation)
    except ValueError as error:
        raise ValueError(f"--explanation: {error}") from None


def reader_options(units: str, missing_leads: str, sampling_rate: float | None, leads: str | None) -> dict[str, Any]:
    """The input-reading options as `read_ecg` keywords; ValueError names the bad option."""
    if units.lower() not in ("auto", "mv", "uv", "µv"):
        raise ValueError(f"--units must be auto, mV or uV, got {units!r}")
    if missing_leads not in ("error", "zero"):
        raise ValueError(f"--missing-leads must be error or zero, got {missing_leads!r}")
    options: dict[str, Any] = {"missing_leads": missing_leads, "units": units}
    if sampling_rate is not None:
        options["sampling_rate_hz"] = sampling_rate
    if leads is not None:
        options["lead_names"] = [name.strip() for name in leads.split(",") if name.strip()]
    return options


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


def predict(
    bundle: Path = typer.Argument(..., help="Model bundle folder (from `ecgkt benchmark`).", show_default=False),
    inputs: list[Path] = typer.Argument(
        ...,
        help="ECG files (WFDB record or .hea, DICOM .dcm, .npy, .npz, GE/Philips/HL7 aECG .xml, SCP-ECG .scp, "
        "EDF .edf), folders, or CSV lists with a 'path' column.",
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
    try:
        reader_kwargs, method = prediction_options(units, missing_leads, sampling_rate, leads, explanation)
    except ValueError as error:
        raise cli_error(error) from None

    from ecgkt.bundle import BundleError
    from ecgkt.explain.supporting_labs import ExplanationError
    from ecgkt.predict.batch import BatchOutcome, predict_many, write_output
    from ecgkt.predict.engine import Predictor
    from ecgkt.signals.readers import EcgInputError, iter_inputs

    try:
        from ecgkt.bundle import load_bundle

        paths = iter_inputs(inputs)
        predictor = Predictor(load_bundle(bundle), explanation=method, top_labs=top_labs)
    except (EcgInputError, BundleError, ExplanationError, FileNotFoundError) as error:
        raise cli_error(error) from None
    single = len(inputs) == 1 and len(paths) == 1 and paths[0] == inputs[0]
    try:
        outcome: BatchOutcome = predict_many(predictor, paths, reader_kwargs, skip_errors=skip_errors, console=console)
    except EcgInputError as error:
        raise cli_error(error) from None
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
