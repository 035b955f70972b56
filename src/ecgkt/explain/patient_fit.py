"""Fitting the patient-specific explanations of a bundle on a store (no ground truth involved).

- direct links: L1 logistic regression of each lab abnormality on all diagnosis labels, TRAINING fold
  labels (explain/population.py);
- concept read-outs: non-negative Lasso from the lab head's logits to the model's diagnosis logits,
  VALIDATION fold outputs (explain/patient.py), once free and once restricted to labs with a positive
  direct link;
- embedding: mean embedding h̄ and each lab's mean-gradient direction on the validation windows.

Nothing here reads the synthetic ground truth: it is used only to *score* methods and choose the
default (explain/patient_eval.py, explain/bundle_calibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.bundle import Bundle
from ecgkt.explain.patient import PatientExplanation, encode_windows, fit_concept_head, lab_directions
from ecgkt.explain.population import fit_direct_links
from ecgkt.explain.store_outputs import FoldOutputs, label_columns, record_windows
from ecgkt.explain.supporting_labs import phi_association
from ecgkt.store import Store

__all__ = ["FittingData", "fit_patient_explanation", "fitting_data", "raw_logits"]

LOGIT_EPS = 1e-6
MAX_DIRECTION_WINDOWS = 4096


def raw_logits(probability: NDArray[np.floating]) -> NDArray[np.float64]:
    p = np.clip(np.asarray(probability, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class FittingData:
    """Training-fold labels (bundle order) and validation-fold model outputs and embeddings."""

    train_diagnosis_targets: NDArray[np.float32]
    train_lab_targets: NDArray[np.float32]
    validation: FoldOutputs
    validation_embeddings: NDArray[np.float32]  # (N, W, d)


def fitting_data(bundle: Bundle, store: Store, validation: FoldOutputs) -> FittingData:
    manifest = bundle.manifest
    train = store.split_indices("train")
    diag_cols = label_columns(manifest.diagnosis_labels, store.manifest.diagnosis_labels, "diagnosis", store)
    lab_cols = label_columns(manifest.lab_labels, store.manifest.lab_labels, "lab", store)
    windows = record_windows(store, validation.indices, manifest.preprocessing.window_samples)
    return FittingData(
        train_diagnosis_targets=store.diagnosis_targets()[train][:, diag_cols].astype(np.float32),
        train_lab_targets=store.lab_targets()[train][:, lab_cols].astype(np.float32),
        validation=validation,
        validation_embeddings=encode_windows(bundle.model, windows),
    )


def fit_patient_explanation(
    bundle: Bundle,
    data: FittingData,
    *,
    seed: int = 0,
    subsample: float | None = None,
) -> PatientExplanation:
    """Fit every part; `subsample` (0–1) refits on a seeded share of each fold (stability across seeds)."""
    manifest = bundle.manifest
    rng = np.random.default_rng(seed)
    train_rows = _rows(data.train_diagnosis_targets.shape[0], subsample, rng)
    val_rows = _rows(len(data.validation), subsample, rng)
    direct = fit_direct_links(
        data.train_diagnosis_targets[train_rows], data.train_lab_targets[train_rows], seed=seed
    )
    z = raw_logits(data.validation.lab_probability)[val_rows]
    y = raw_logits(data.validation.diagnosis_probability)[val_rows]
    weights, intercepts, r2 = fit_concept_head(z, y, seed=seed)
    direct_weights, direct_intercepts, _ = fit_concept_head(z, y, allowed=direct > 0, seed=seed)
    h = data.validation_embeddings[val_rows]
    flat = h.reshape(-1, h.shape[-1])
    if flat.shape[0] > MAX_DIRECTION_WINDOWS:
        flat = flat[np.sort(rng.choice(flat.shape[0], MAX_DIRECTION_WINDOWS, replace=False))]
    phi = phi_association(data.train_diagnosis_targets[train_rows], data.train_lab_targets[train_rows])
    return PatientExplanation(
        diagnosis_labels=list(manifest.diagnosis_labels),
        lab_labels=list(manifest.lab_labels),
        direct=direct.astype(float).tolist(),
        concept_weights=weights.tolist(),
        concept_direct_weights=direct_weights.tolist(),
        concept_intercepts=intercepts.tolist(),
        concept_direct_intercepts=direct_intercepts.tolist(),
        concept_baseline=z.mean(axis=0).tolist(),
        diagnosis_baseline=y.mean(axis=0).tolist(),
        concept_r2=r2,
        phi=phi.astype(float).tolist(),
        lab_mean_probability=data.validation.lab_probability[val_rows].mean(axis=0).astype(float).tolist(),
        embedding_mean=flat.mean(axis=0).astype(float).tolist(),
        lab_directions=lab_directions(bundle.model, flat[None]).astype(float).tolist(),
        n_records=int(val_rows.size),
    )


def _rows(n: int, subsample: float | None, rng: np.random.Generator) -> NDArray[np.int64]:
    if subsample is None or subsample >= 1.0:
        return np.arange(n, dtype=np.int64)
    size = max(1, round(subsample * n))
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)
