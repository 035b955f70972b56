"""`ecgkt predict` accepts the vendor formats and writes a FHIR R4 Bundle with `--format fhir`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.convert.writers import WRITERS
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.synth.ecg_params import EcgParameters
from ecgkt.synth.waveform import render_ecg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))
from predict_samples import make_bundle

fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("formats-predict") / "bundle")


def test_predict_reads_every_vendor_format_and_writes_fhir(bundle: Path, tmp_path: Path) -> None:
    signal, _ = render_ecg(EcgParameters(), np.random.default_rng(3))
    mimic = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
    canonical = np.stack([signal[mimic.index(lead)] for lead in CANONICAL_LEADS], axis=1).astype(np.float64)
    files = []
    for fmt, suffix in (("ge-muse", ".xml"), ("hl7-aecg", ".xml"), ("edf", ".edf"), ("scp-ecg", ".scp"),
                        ("ge-cardiosoft", ".xml"), ("philips", ".xml")):
        path = tmp_path / f"ecg_{fmt}{suffix}"
        WRITERS[fmt](path, canonical, CANONICAL_LEADS, 500.0)
        files.append(str(path))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(bundle), *files])
    assert result.exit_code == 0, result.output
    payloads = json.loads(result.stdout)
    probabilities = np.array([[d["probability"] for d in p["diagnoses"]] for p in payloads])
    assert np.ptp(probabilities, axis=0).max() < 0.02  # same ECG, six formats: (near) same prediction
    out = tmp_path / "report.fhir.json"
    result = runner.invoke(app, ["predict", str(bundle), files[0], "--format", "fhir", "--out", str(out)])
    assert result.exit_code == 0, result.output
    parsed = fhir_bundle.Bundle.model_validate(json.loads(out.read_text()))
    kinds = [entry.resource.__resource_type__ for entry in parsed.entry]
    assert kinds.count("DiagnosticReport") == 1


def test_report_reads_a_vendor_file_and_shows_measurements(bundle: Path, tmp_path: Path) -> None:
    signal, _ = render_ecg(EcgParameters(heart_rate_bpm=75), np.random.default_rng(5))
    mimic = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
    canonical = np.stack([signal[mimic.index(lead)] for lead in CANONICAL_LEADS], axis=1).astype(np.float64)
    path = tmp_path / "ecg.xml"
    WRITERS["hl7-aecg"](path, canonical, CANONICAL_LEADS, 500.0)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(bundle), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert re.search(r"Measurements: HR 7[4-7] bpm \(regular\)", page)  # 75 bpm drawn, HRV 30 ms
    assert "QT/QTc" in page
