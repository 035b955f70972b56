"""CLI: `ecgkt convert INPUT... --to wfdb|ge-muse|... --out DIR` — bring an ECG archive into one format.

Every input goes through the same reader as `predict` (`ecgkt.signals.readers.read_ecg`), so the
converted record is the 12 canonical leads in mV the model would see, at the file's own rate;
`--to wfdb` writes MIMIC-IV-ECG style records (format 16, 200 adu/mV, I, II, III, aVR, aVF, aVL,
V1–V6) that the cohort builder reads. A bad input stops with one red line naming it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ecgkt.cli_errors import cli_error

_SUFFIX = {"wfdb": "", "ge-muse": ".xml", "ge-cardiosoft": ".xml", "philips": ".xml", "hl7-aecg": ".xml",
           "scp-ecg": ".scp", "edf": ".edf"}


def convert(
    inputs: list[Path] = typer.Argument(..., help="ECG files, folders or CSV lists (any supported format)."),
    to: str = typer.Option("wfdb", "--to", help="wfdb | ge-muse | ge-cardiosoft | philips | hl7-aecg | scp-ecg | edf."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder.", show_default=False),
    muse_leads: int = typer.Option(8, "--muse-leads", help="Leads stored in GE MUSE output: 8 or 12."),
    uv_per_lsb: float = typer.Option(4.88, "--uv-per-lsb", help="Amplitude resolution of integer formats (µV)."),
) -> None:
    """Convert ECG files to WFDB (MIMIC layout) or another supported format."""
    from ecgkt.convert.writers import WRITERS, WriteOptions
    from ecgkt.signals.leads import CANONICAL_LEADS
    from ecgkt.signals.readers import EcgInputError, iter_inputs, read_ecg

    if to not in WRITERS:
        raise cli_error(f"--to {to}: expected one of {', '.join(WRITERS)}")
    if muse_leads not in (8, 12):
        raise cli_error(f"--muse-leads {muse_leads}: expected 8 or 12")
    if not 0.01 <= uv_per_lsb <= 1000:
        raise cli_error(f"--uv-per-lsb {uv_per_lsb}: expected 0.01–1000 µV")
    options = WriteOptions(uv_per_lsb=uv_per_lsb, muse_leads=muse_leads)
    try:
        paths = iter_inputs(inputs)
        records = [read_ecg(path) for path in paths]  # read all first: no partial output on a bad input
    except EcgInputError as error:
        raise cli_error(error) from None
    names: set[str] = set()
    for path, record in zip(paths, records, strict=True):
        stem = path.name.split(".")[0] if to != "wfdb" or path.suffix else path.name
        name = stem
        k = 1
        while name in names:
            k += 1
            name = f"{stem}_{k}"
        names.add(name)
        target = out / (name + _SUFFIX[to])
        WRITERS[to](target, record.signal_mv.T.astype("float64"), CANONICAL_LEADS, record.sampling_rate_hz, options)
        typer.echo(f"{path} -> {target}{'.hea' if to == 'wfdb' else ''}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
