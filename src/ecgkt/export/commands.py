"""CLI: `ecgkt export BUNDLE --onnx OUT.onnx` (heavy imports stay inside the command body)."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    bundle: Path = typer.Argument(
        ..., help="Model bundle folder (bundle.json + weights.safetensors).", show_default=False
    ),
    onnx: Path = typer.Option(..., "--onnx", help="Output ONNX file (.onnx).", show_default=False),
    opset: int = typer.Option(17, "--opset", help="ONNX opset: 17 (TorchScript exporter) or ≥ 18 (torch.export)."),
    parity_input: list[Path] | None = typer.Option(
        None,
        "--parity-input",
        help="ECG file/folder/CSV to check parity on (repeatable); default: synthetic MIMIC WFDB records.",
    ),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Maximum allowed |logit difference| vs PyTorch."),
) -> None:
    """Export the ECG-only model (diagnosis + lab heads) to ONNX and check parity against PyTorch."""
    from rich.console import Console

    from ecgkt.export.onnx import export_onnx

    console = Console(stderr=True)
    with console.status("exporting to ONNX and checking parity…"):
        report = export_onnx(bundle, onnx, opset, parity_inputs=parity_input or None, tolerance=tolerance)
    typer.echo(f"wrote {report.summary()}")
    typer.echo(f"max abs difference: {report.max_abs_diff:.3e}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
