"""Export a model bundle's ECG-only model (diagnosis + lab heads) to ONNX, with a parity check.

The exported graph takes `windows` (batch × 12 × window_samples, float32, canonical lead order,
preprocessed exactly as `ecgkt.signals.readers.prepare_windows` does) and returns the logits
`diagnosis_logits` (batch × K) and `lab_logits` (batch × P); the batch axis is dynamic. Sigmoid,
window averaging, calibration temperatures and thresholds stay outside the graph (they live in the
bundle manifest, which the prediction engine applies to any runner's logits), so the ONNX file is
exactly "the network". Label names, the window length and the ecgkt version are stored as ONNX
metadata so a consumer without ecgkt can still tell which column is which.

Exporters (torch 2.13): opset ≥ 18 uses the default torch.export-based exporter (needs the
`onnxscript` package; it cannot emit opset < 18 — its down-conversion leaves 18 when an adapter,
e.g. for Split, is missing). Opset 17, the default for the widest runtime compatibility, uses
torch's TorchScript-based exporter, deprecated but still shipped. Both export the same
`make_exportable` view of the model, so they give the same graph semantics; parity is measured
either way.

Parity is checked on real inputs: synthetic 12-lead ECGs written as MIMIC-layout WFDB records and
read back through the same reader and preprocessing as `ecgkt predict` (or on files the user
names). The file is only moved into place when the maximum absolute difference of the logits is
within tolerance, so a failed export never leaves a file behind.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ecgkt import __version__
from ecgkt.atomic_files import replacing
from ecgkt.errors import UserError

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
INPUT_NAME = "windows"
OUTPUT_NAMES = ("diagnosis_logits", "lab_logits")


class OnnxExportError(UserError, RuntimeError):
    """Export impossible or not faithful: missing exporter package, parity above tolerance, bad input."""


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX graph reproduces PyTorch on real, preprocessed ECG windows."""

    onnx_path: Path
    opset: int
    exporter: str
    n_records: int
    n_windows: int
    max_abs_diff_diagnosis: float
    max_abs_diff_lab: float
    tolerance: float
    size_bytes: int

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_diagnosis, self.max_abs_diff_lab)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        return (
            f"{self.onnx_path} (opset {self.opset}, {self.exporter} exporter, "
            f"{self.size_bytes / 1e6:.1f} MB): "
            f"max |logit difference| vs PyTorch on {self.n_windows} windows from {self.n_records} records = "
            f"{self.max_abs_diff:.2e} (diagnosis {self.max_abs_diff_diagnosis:.2e}, "
            f"lab {self.max_abs_diff_lab:.2e}; tolerance {self.tolerance:.0e})"
        )


class OnnxRunner:
    """The prediction engine's `Runner` on onnxruntime: windows (W, 12, L) → (diag (W, K), lab (W, P)).

    One `InferenceSession` is created and shared; onnxruntime allows concurrent `run` calls on a
    session, so one runner serves all request threads of the service.
    """

    def __init__(self, path: Path | str, *, intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxExportError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for bad models
            raise OnnxExportError(f"{self.path}: onnxruntime cannot load the model ({error})") from None
        inputs = self.session.get_inputs()
        outputs = [output.name for output in self.session.get_outputs()]
        if len(inputs) != 1 or tuple(outputs) != OUTPUT_NAMES:
            raise OnnxExportError(
                f"{self.path}: expected one input and outputs {OUTPUT_NAMES}, found "
                f"{[i.name for i in inputs]} → {outputs}; export it with `ecgkt export`"
            )
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.window_samples = shape[2] if len(shape) == 3 and isinstance(shape[2], int) else None

    def __call__(self, windows: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        batch = np.ascontiguousarray(windows, dtype=np.float32)
        if batch.ndim != 3 or batch.shape[1] != 12:
            raise ValueError(f"OnnxRunner expects windows of shape (W, 12, L), got {batch.shape}")
        if self.window_samples is not None and batch.shape[2] != self.window_samples:
            raise ValueError(f"{self.path} takes windows of {self.window_samples} samples, got {batch.shape[2]}")
        diagnosis, lab = self.session.run(list(OUTPUT_NAMES), {self.input_name: batch})
        return np.asarray(diagnosis, dtype=np.float32), np.asarray(lab, dtype=np.float32)


# ---- export -----------------------------------------------------------------------------------


@contextmanager
def _quiet_exporter() -> Any:
    """The exporters announce every step on stdout/loggers; keep CLI and test output readable."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_model(
    model: Any,
    out_path: Path,
    *,
    window_samples: int,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
) -> str:
    """Write `model` (forward(x) → (diag_logits, lab_logits)) to `out_path` as ONNX; returns the exporter.

    Writes directly to `out_path` (callers make it atomic). Batch axis dynamic, time axis fixed.
    """
    import torch

    from ecgkt.export.exportable import make_exportable

    if opset < 13:
        raise OnnxExportError(f"opset {opset} is too old (LayerNormalization needs 17; use 17 or newer)")
    exportable = make_exportable(model, window_samples)
    example = torch.zeros(2, 12, window_samples)
    with _quiet_exporter(), torch.no_grad():
        if opset >= 18:
            try:
                import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
            except ModuleNotFoundError:
                raise OnnxExportError(
                    f"opset {opset} uses torch's torch.export-based ONNX exporter, which needs the "
                    "`onnxscript` package (pip install onnxscript); opset 17 works without it"
                ) from None
            torch.onnx.export(
                exportable,
                (example,),
                str(out_path),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                external_data=False,
                verbose=False,
            )
            exporter = "torch.export"
        else:
            torch.onnx.export(
                exportable,
                (example,),
                str(out_path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            )
            exporter = "torchscript"
    if metadata:
        _set_metadata(out_path, metadata)
    return exporter


def _set_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def export_onnx(
    bundle_path: Path | str,
    out_path: Path | str,
    opset: int = DEFAULT_OPSET,
    *,
    parity_inputs: Sequence[Path] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ParityReport:
    """Export the bundle's model to `out_path`, measure parity vs PyTorch, and keep it only if faithful.

    `parity_inputs`: ECG files (any format `ecgkt predict` reads) to compare on; default: synthetic
    MIMIC-layout WFDB records (see `ecgkt.export.parity`). Raises `OnnxExportError` when the maximum
    absolute logit difference exceeds `tolerance` (nothing is written then).
    """
    import torch

    from ecgkt.bundle import load_bundle
    from ecgkt.export.parity import parity_windows

    out = Path(out_path)
    if out.suffix.lower() != ".onnx":
        raise OnnxExportError(f"{out}: the output file name must end in .onnx")
    if out.is_dir():
        raise OnnxExportError(f"{out}: is a folder; give a file name ending in .onnx")
    bundle = load_bundle(bundle_path)
    manifest = bundle.manifest
    window = manifest.preprocessing.window_samples
    windows, n_records = parity_windows(parity_inputs, window_samples=window)

    with replacing(out, suffix=".onnx") as staging:
        prep = manifest.preprocessing
        metadata = {
            "ecgkt_version": __version__,
            "input": f"{INPUT_NAME}: float32 (batch, 12, {window}) mV, leads {','.join(prep.leads)}, "
            f"{prep.sampling_rate_hz} Hz, clipped ±{prep.clip_mv:g} mV",
            "outputs": "diagnosis_logits (batch, K), lab_logits (batch, P); sigmoid, window averaging, "
            "temperatures and thresholds are applied outside the graph (see the bundle manifest)",
            "diagnosis_labels": ",".join(manifest.diagnosis_labels),
            "lab_labels": ",".join(manifest.lab_labels),
        }
        exporter = export_model(bundle.model, staging, window_samples=window, opset=opset, metadata=metadata)
        runner = OnnxRunner(staging, intra_op_threads=1)
        with torch.inference_mode():
            reference = bundle.model(torch.from_numpy(windows))
        diagnosis, lab = runner(windows)
        report = ParityReport(
            onnx_path=out,
            opset=_onnx_opset(staging),
            exporter=exporter,
            n_records=n_records,
            n_windows=int(windows.shape[0]),
            max_abs_diff_diagnosis=float(np.max(np.abs(diagnosis - reference[0].numpy()))),
            max_abs_diff_lab=float(np.max(np.abs(lab - reference[1].numpy()))),
            tolerance=tolerance,
            size_bytes=staging.stat().st_size,
        )
        if not report.passed:
            raise OnnxExportError(f"parity check failed, nothing written: {report.summary()}")
    return report
