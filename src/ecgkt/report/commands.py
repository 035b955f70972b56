"""CLI: `ecgkt report BUNDLE INPUT --out report.html|report.pdf` — the clinical report of one ECG.

The format follows the extension of `--out`. Heavy imports stay inside the command so `ecgkt --help`
stays fast; a bad input or bundle prints one red line naming it and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.atomic_files import write_text_atomically
from ecgkt.cli_errors import cli_error
from ecgkt.cli_options import prediction_options


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    bundle: Path = typer.Argument(..., help="Model bundle folder.", show_default=False),
    input_path: Path = typer.Argument(
        ...,
        metavar="INPUT",
        help="One ECG: WFDB record or .hea, DICOM .dcm, .npy, .npz, vendor .xml, .scp or .edf.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="report.html or report.pdf (format from the extension).", show_default=False
    ),
    missing_leads: str = typer.Option("error", "--missing-leads", help="error | zero."),
    sampling_rate: float | None = typer.Option(None, "--sampling-rate", help="Sampling rate in Hz (for .npy)."),
    leads: str | None = typer.Option(None, "--leads", help="Comma-separated lead names in the file's channel order."),
    units: str = typer.Option("auto", "--units", help="auto | mV | uV."),
    explanation: str | None = typer.Option(
        None,
        "--explanation",
        help="association (default) | surrogate | surrogate_centered | gradient | gradient_x_probability.",
    ),
) -> None:
    """Write the report of one ECG: 12-lead tracing, diagnoses with supporting labs, model statement."""
    from rich.console import Console

    console = Console(stderr=True)

    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise cli_error(f"{out}: --out must end in .html or .pdf")
    reader_kwargs, method = prediction_options(units, missing_leads, sampling_rate, leads, explanation)

    from ecgkt.bundle import load_bundle
    from ecgkt.predict.engine import Predictor
    from ecgkt.report.html import render_report_html, report_content
    from ecgkt.report.pdf import write_report_pdf
    from ecgkt.signals.readers import read_ecg

    predictor = Predictor(load_bundle(bundle), explanation=method)
    ecg = read_ecg(input_path, **reader_kwargs)
    result = predictor.predict(ecg)
    shown_method = predictor.explanation_method
    if suffix == ".pdf":
        content = report_content(result, ecg, predictor.manifest, explanation_method=shown_method)
        write_report_pdf(out, content, ecg)
    else:
        html = render_report_html(result, ecg, predictor.manifest, explanation_method=shown_method)
        write_text_atomically(out, html)
    positives = [d.code for d in result.diagnoses if d.positive]
    console.print(
        f"wrote {out} ({len(positives)} positive diagnoses{': ' + ', '.join(positives[:5]) if positives else ''})",
        highlight=False,
    )


