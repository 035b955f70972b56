"""Builders for the prediction, explanation and report tests (imported by their conftest files).

- `make_bundle`: a tiny random model whose LINEAR heads plant a known structure: the diagnosis
  E87.5 (hyperkalaemia) reads the same direction of h_x as the lab Potassium_high, N18 (CKD) that of
  Creatinine_high (+ a little Urea), so a correct explanation method must rank those labs first;
- `make_store`: a small dataset store (StoreWriter) with realistic synthetic ECGs, folds with a
  usable validation and test fold, and targets;
- `write_ground_truth`: a graph.json in the `ecgkt synth` schema stating those drivers;
- `realistic_ecg_mv`: a 12-lead ECG from the synthetic renderer, canonical lead order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray

from ecgkt.bundle import BundleManifest, EcgOnlyModel, save_bundle
from ecgkt.mimic.layout import MIMIC_LEAD_ORDER
from ecgkt.models.config import EcgEncoderConfig, HeadConfig
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.store import FoldSpec, PreprocessingSpec, StoreManifest, StoreWriter
from ecgkt.synth.ecg_params import EcgParameters, NoiseParameters

DIAGNOSES = {
    "E875": "Hyperkalemia",
    "N18": "Chronic kidney disease (CKD)",
    "I10": "Essential (primary) hypertension",
    "R07": "Pain in throat and chest",
}
LABS = ["Potassium_high", "Creatinine_high", "Urea Nitrogen_high", "Hemoglobin_low", "Sodium_low", "Glucose_high"]
D_MODEL = 8


def make_bundle(path: Path, *, seed: int = 0, calibrated: bool = False, low_thresholds: bool = False) -> Path:
    """Random encoder, linear heads with the planted diagnosis ↔ lab structure described above."""
    torch.manual_seed(seed)
    manifest = BundleManifest(
        encoder=EcgEncoderConfig(d_model=D_MODEL, n_layers=1, d_state=4, dropout=0.0),
        diagnosis_head=HeadConfig(hidden=[], dropout=0.0),
        lab_head=HeadConfig(hidden=[], dropout=0.0),
        diagnosis_labels=list(DIAGNOSES),
        diagnosis_titles=DIAGNOSES,
        lab_labels=LABS,
        validation_auroc_diagnosis={"E875": 0.81, "N18": 0.77, "I10": 0.66, "R07": float("nan")},
        validation_auroc_lab={"Potassium_high": 0.74, "Creatinine_high": 0.71},
        training={"preset": "test", "store": "/data/stores/synthetic-test", "store_n_records": 120},
    )
    if calibrated or low_thresholds:
        threshold = 0.0 if low_thresholds else 0.5
        manifest = manifest.model_copy(
            update={
                "temperature_diagnosis": 1.0,
                "temperature_lab": 1.0,
                "thresholds_diagnosis": dict.fromkeys(DIAGNOSES, threshold),
                "thresholds_lab": dict.fromkeys(LABS, 0.5),
            }
        )
    model = EcgOnlyModel.from_manifest(manifest)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        lab_weight = torch.randn(len(LABS), D_MODEL, generator=generator) * 1.0
        model.lab_head.net[-1].weight.copy_(lab_weight)
        model.lab_head.net[-1].bias.zero_()
        diag_weight = torch.randn(len(DIAGNOSES), D_MODEL, generator=generator) * 1.0
        diag_weight[0] = lab_weight[0]  # E875 ↔ Potassium_high
        diag_weight[1] = lab_weight[1] + 0.2 * lab_weight[2]  # N18 ↔ Creatinine_high (+ Urea)
        model.diagnosis_head.net[-1].weight.copy_(diag_weight)
        model.diagnosis_head.net[-1].bias.zero_()
    return save_bundle(path, model, manifest)


def realistic_ecg_mv(fs: int = 500, seconds: float = 10.0, seed: int = 0, **params: object) -> NDArray[np.float32]:
    """(12, n) in mV, canonical lead order, from the synthetic cohort's renderer (no NaN stretches)."""
    from ecgkt.synth.waveform import render_ecg

    rng = np.random.default_rng(seed)
    parameters = EcgParameters(
        heart_rate_bpm=float(rng.uniform(55, 110)), noise=NoiseParameters(nan_stretch=False), **params
    )  # type: ignore[arg-type]
    signal, _ = render_ecg(parameters, rng, fs=fs, n_samples=round(fs * seconds))
    order = [MIMIC_LEAD_ORDER.index(lead) for lead in CANONICAL_LEADS]
    return np.asarray(signal[order], dtype=np.float32)


def make_store(path: Path, *, n_records: int = 90, seed: int = 0) -> Path:
    """Store with folds: 40 % train (0–17), 30 % validation (18), 30 % test (19)."""
    from ecgkt.signals.preprocess import preprocess

    rng = np.random.default_rng(seed)
    writer = StoreWriter(path)
    signals = writer.signals(n_records)
    for i in range(n_records):
        raw = realistic_ecg_mv(fs=100, seed=seed * 10_000 + i, t_amplitude_scale=float(rng.uniform(0.5, 2.5)))
        signals[i] = preprocess(raw, 100)[0]
    signals.flush()
    folds = np.where(
        np.arange(n_records) % 10 < 4, np.arange(n_records) % 18, np.where(np.arange(n_records) % 10 < 7, 18, 19)
    )
    writer.write_table(
        "records.parquet",
        pl.DataFrame(
            {
                "row": np.arange(n_records),
                "subject_id": 10_000_000 + np.arange(n_records),
                "study_id": 40_000_000 + np.arange(n_records),
                "fold": folds.astype(np.int64),
            }
        ),
    )
    writer.write_table("features.parquet", pl.DataFrame({"age": rng.uniform(20, 90, n_records)}))
    diagnosis = (rng.random((n_records, len(DIAGNOSES))) < 0.3).astype(np.float32)
    labs = (rng.random((n_records, len(LABS))) < 0.3).astype(np.float32)
    labs[rng.random(labs.shape) < 0.2] = np.nan
    diagnosis[:, 0] = np.where(np.isnan(labs[:, 0]), diagnosis[:, 0], labs[:, 0])  # co-occurrence signal
    writer.write_table("diagnoses.parquet", pl.DataFrame({k: diagnosis[:, i] for i, k in enumerate(DIAGNOSES)}))
    writer.write_table("lab_labels.parquet", pl.DataFrame({k: labs[:, i] for i, k in enumerate(LABS)}))
    writer.write_manifest(
        StoreManifest(
            n_records=n_records,
            preprocessing=PreprocessingSpec(leads=list(CANONICAL_LEADS)),
            diagnosis_labels=list(DIAGNOSES),
            diagnosis_titles=DIAGNOSES,
            lab_labels=LABS,
            features=[],
            folds=FoldSpec(sizes=[int((folds == f).sum()) for f in range(20)]),
        )
    )
    return writer.commit()


def write_ground_truth(folder: Path) -> Path:
    """graph.json (schema 1): hyperkalaemia → Potassium high; CKD → Creatinine, Urea high; HTN → none."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = {
        "schema_version": 1,
        "states": [],
        "icd_codes": [
            {"state": "hyperkalaemia", "icd10": ["E87.5"], "icd10_undotted": ["E875"]},
            {"state": "ckd", "icd10": ["N18.4", "N18.30"], "icd10_undotted": ["N184", "N1830"]},
            {"state": "hypertension", "icd10": ["I10"], "icd10_undotted": ["I10"]},
        ],
        "lab_effects": [
            {"state": "hyperkalaemia", "lab": "Potassium", "direction": "high", "effect_size": 1.5},
            {"state": "ckd", "lab": "Creatinine", "direction": "high", "effect_size": 1.2},
            {"state": "ckd", "lab": "Urea Nitrogen", "direction": "high", "effect_size": 0.9},
            {"state": "ckd", "lab": "Albumin", "direction": "low", "effect_size": -0.3},
        ],
    }
    (folder / "graph.json").write_text(json.dumps(graph))
    return folder
