"""ONNX export: numerically faithful on real ECG windows, dynamic batch, metadata, clear failures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bundles import export_bundle_at
from typer.testing import CliRunner

import ecgkt.export.exportable as exportable_module
from ecgkt.bundle import load_bundle
from ecgkt.cli import app
from ecgkt.export.exportable import DftS4Layer, make_exportable
from ecgkt.export.onnx import OnnxExportError, OnnxRunner, export_onnx
from ecgkt.export.parity import parity_windows
from ecgkt.models.s4 import S4Layer

HAS_ONNXSCRIPT = importlib.util.find_spec("onnxscript") is not None


@pytest.fixture(scope="module")
def exported(export_bundle: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return export_onnx(export_bundle, out)


def test_exportable_view_matches_the_fft_model_and_leaves_it_untouched(export_bundle: Path) -> None:
    model = load_bundle(export_bundle).model
    view = make_exportable(model, 250)
    assert any(isinstance(m, DftS4Layer) for m in view.modules())
    assert not any(
        isinstance(m, S4Layer) and not isinstance(p, DftS4Layer) for p in view.modules() for m in p.children()
    )
    assert sum(isinstance(m, S4Layer) for m in model.encoder.modules()) == 2  # the original keeps its FFT layers
    windows = torch.from_numpy(parity_windows(None, window_samples=250)[0])
    with torch.inference_mode():
        for expected, got in zip(model(windows), view(windows), strict=True):
            assert torch.allclose(expected, got, atol=2e-5), float((expected - got).abs().max())


def test_export_passes_parity_on_real_windows(exported) -> None:  # type: ignore[no-untyped-def]
    assert exported.passed
    assert exported.max_abs_diff < 1e-4
    assert exported.n_records == 5 and exported.n_windows == 20
    assert exported.opset == 17 and exported.exporter == "torchscript"
    assert exported.onnx_path.is_file()
    assert "max |logit difference|" in exported.summary()


def test_onnx_file_has_dynamic_batch_and_label_metadata(exported, export_bundle: Path) -> None:  # type: ignore[no-untyped-def]
    model = onnx.load(str(exported.onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["diagnosis_labels"] == "I48,I10,N179,E875"
    assert props["lab_labels"] == "Potassium_high,Creatinine_high,Troponin T_high"
    runner = OnnxRunner(exported.onnx_path)
    reference = load_bundle(export_bundle).model
    windows = parity_windows(None, window_samples=250)[0]
    for batch in (1, 7):
        diag, lab = runner(windows[:batch])
        assert diag.shape == (batch, 4) and lab.shape == (batch, 3)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(windows[:batch]))
        assert np.abs(diag - expected[0].numpy()).max() < 1e-4


@pytest.mark.skipif(not HAS_ONNXSCRIPT, reason="opset ≥ 18 uses torch.export-based exporter, which needs onnxscript")
def test_opset_18_uses_the_torch_export_exporter(export_bundle: Path, tmp_path: Path) -> None:
    report = export_onnx(export_bundle, tmp_path / "m18.onnx", opset=18)
    assert report.exporter == "torch.export" and report.opset == 18
    assert report.max_abs_diff < 1e-4


def test_unidirectional_encoder_exports_faithfully(tmp_path: Path) -> None:
    bundle = export_bundle_at(tmp_path / "causal", bidirectional=False, seed=3)
    assert export_onnx(bundle, tmp_path / "causal.onnx").max_abs_diff < 1e-4


def test_parity_on_user_files(export_bundle: Path, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    dicom = Path(str(get_testdata_file("waveform_ecg.dcm")))
    report = export_onnx(export_bundle, tmp_path / "m.onnx", parity_inputs=[dicom])
    assert report.n_records == 1 and report.n_windows == 4 and report.passed


def test_parity_failure_writes_nothing(export_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = exportable_module.make_exportable

    def drifting(model: torch.nn.Module, length: int) -> torch.nn.Module:
        view = real(model, length)
        with torch.no_grad():
            view.lab_head.net[-1].bias += 1e-3  # type: ignore[index, union-attr]
        return view

    monkeypatch.setattr(exportable_module, "make_exportable", drifting)
    with pytest.raises(OnnxExportError, match="parity check failed"):
        export_onnx(export_bundle, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_runner_rejects_wrong_inputs(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = OnnxRunner(exported.onnx_path)
    with pytest.raises(ValueError, match="250 samples"):
        runner(np.zeros((2, 12, 500), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(W, 12, L\)"):
        runner(np.zeros((2, 11, 250), dtype=np.float32))
    with pytest.raises(OnnxExportError, match="no such ONNX file"):
        OnnxRunner(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(OnnxExportError, match="cannot load"):
        OnnxRunner(garbage)


def test_cli_export_prints_the_difference_and_fails_cleanly(export_bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["export", str(export_bundle), "--onnx", str(tmp_path / "cli.onnx")])
    assert ok.exit_code == 0, ok.output
    assert "max abs difference" in ok.output and (tmp_path / "cli.onnx").is_file()
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--onnx", str(tmp_path / "x.onnx")])
    assert missing.exit_code == 2
    assert "not a model bundle" in missing.output and "Traceback" not in missing.output
    wrong_suffix = runner.invoke(app, ["export", str(export_bundle), "--onnx", str(tmp_path / "x.txt")])
    assert wrong_suffix.exit_code == 2 and ".onnx" in wrong_suffix.output
