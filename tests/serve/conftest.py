"""Fixtures for the service tests: a tiny random bundle, an app on it, and one upload of each kind.

The bundle is randomly initialised (no training needed) but calibrated with low thresholds so that
diagnoses are positive and carry supporting labs, which the report and page must show.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from ecgkt.bundle import BundleManifest, EcgOnlyModel, save_bundle
from ecgkt.export.parity import PARITY_ECGS, write_synthetic_wfdb
from ecgkt.models.config import EcgEncoderConfig, HeadConfig
from ecgkt.serve.app import create_app
from ecgkt.serve.settings import ServeSettings

DIAGNOSES = {
    "I48": "Atrial fibrillation and flutter",
    "I10": "Essential (primary) hypertension",
    "N179": "Acute kidney failure, unspecified",
}
LABS = ["Potassium_high", "Creatinine_high", "Troponin T_high", "Hemoglobin_low"]


def make_bundle(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    manifest = BundleManifest(
        encoder=EcgEncoderConfig(d_model=16, n_layers=2, d_state=4, dropout=0.0),
        diagnosis_head=HeadConfig(hidden=[16], dropout=0.0),
        lab_head=HeadConfig(hidden=[16], dropout=0.0),
        diagnosis_labels=list(DIAGNOSES),
        diagnosis_titles=DIAGNOSES,
        lab_labels=LABS,
        validation_auroc_diagnosis={"I48": 0.91, "I10": 0.64, "N179": 0.71},
        validation_auroc_lab={"Potassium_high": 0.73, "Creatinine_high": 0.69},
        temperature_diagnosis=1.0,
        temperature_lab=1.0,
        thresholds_diagnosis=dict.fromkeys(DIAGNOSES, 0.01),
        thresholds_lab=dict.fromkeys(LABS, 0.01),
    )
    return save_bundle(path, EcgOnlyModel.from_manifest(manifest), manifest)


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return make_bundle(tmp_path_factory.mktemp("serve") / "bundle")


@pytest.fixture(scope="session")
def settings() -> ServeSettings:
    return ServeSettings(max_upload_mb=2.0, inference_timeout_s=20.0, inference_threads=2, torch_threads=1)


@pytest.fixture(scope="session")
def client(bundle_path: Path, settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(bundle_path, "torch", settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def wfdb_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s synthetic ECG in MIMIC-IV-ECG's WFDB format (aVF before aVL); returns the .hea path."""
    return write_synthetic_wfdb(tmp_path_factory.mktemp("wfdb"), PARITY_ECGS[2], record_name="40689238", seed=3)


@pytest.fixture(scope="session")
def wfdb_files(wfdb_record: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    dat = wfdb_record.with_suffix(".dat")
    return [
        ("files", (wfdb_record.name, wfdb_record.read_bytes(), "text/plain")),
        ("files", (dat.name, dat.read_bytes(), "application/octet-stream")),
    ]


@pytest.fixture(scope="session")
def dicom_bytes() -> bytes:
    """The real 12-lead ECG DICOM that ships with pydicom (no download)."""
    from pydicom.data import get_testdata_file

    return Path(str(get_testdata_file("waveform_ecg.dcm"))).read_bytes()


@pytest.fixture(scope="session")
def ecg_mv(wfdb_record: Path) -> np.ndarray:
    """(12, 5000) canonical-order mV signal at 500 Hz (the WFDB record, read back)."""
    from ecgkt.signals.readers import read_ecg

    return read_ecg(wfdb_record).signal_mv
