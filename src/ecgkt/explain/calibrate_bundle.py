"""`ecgkt calibrate`: fit temperatures, thresholds and the explanation surrogate on the validation fold.

What is fitted, all on the store's validation fold (never on test, never on train):
- one temperature per head, on the window-averaged prediction the engine produces
  (p = σ(logit(p̄) / T), see predict/engine.py), by minimising the masked NLL;
- one threshold per label on the calibrated probabilities, by Youden's J (sensitivity +
  specificity − 1): it treats a missed and a false finding alike, is insensitive to prevalence, and
  gives 0.5 when a label has only one class on validation;
- the explanations' fitted parts: the diagnosis ↔ lab association of the TRAINING fold's labels
  (the default explanation, explain/association.py) and the sparse lab → diagnosis surrogate
  (explain/surrogate.py), fitted on validation.

Expected calibration error per head is measured before and after, on validation and (when the
store has one) on the test fold, and written to `calibration_report.json` in the bundle. The
bundle's `bundle.json` is rewritten atomically (temp file + rename); weights are untouched.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from ecgkt.atomic_files import write_text_atomically
from ecgkt.bundle import MANIFEST_FILE, Bundle, BundleManifest, load_bundle
from ecgkt.errors import UserError
from ecgkt.evaluate.calibration import (
    ThresholdRule,
    apply_temperature,
    choose_thresholds,
    expected_calibration_error,
    fit_temperature,
)
from ecgkt.explain.association import fit_association, save_association
from ecgkt.explain.store_outputs import FoldOutputs, fold_outputs, label_columns
from ecgkt.explain.surrogate import fit_surrogate, logit, save_surrogate
from ecgkt.store import Store

REPORT_FILE = "calibration_report.json"
ECE_BINS = 15


class HeadCalibration(BaseModel):
    temperature: float
    ece_validation_before: float | None
    ece_validation_after: float | None
    ece_test_before: float | None
    ece_test_after: float | None
    n_positive_thresholds: int  # labels whose threshold came from data (not the 0.5 fallback)


class CalibrationSummary(BaseModel):
    bundle: str
    store: str
    threshold_rule: str
    n_validation: int
    n_test: int
    diagnosis: HeadCalibration
    lab: HeadCalibration
    surrogate_median_cv_r2: float | None
    surrogate_mean_labs_used: float | None


class CalibrationError(UserError, ValueError):
    """A validation fold that cannot be used for calibration (empty, no known targets)."""


def calibrate_bundle(
    bundle_path: Path, store_path: Path, *, rule: ThresholdRule = "youden", seed: int = 0, surrogate: bool = True
) -> CalibrationSummary:
    bundle = load_bundle(bundle_path)
    store = Store.open(store_path)
    validation = fold_outputs(bundle, store, "val", progress_label="calibrating on the validation fold")
    if len(validation) == 0:
        raise CalibrationError(f"{store.path}: the validation fold is empty")
    test = fold_outputs(bundle, store, "test", progress_label="measuring ECE on the test fold")
    manifest = bundle.manifest

    diag = _calibrate_head(validation, test, "diagnosis", rule)
    lab = _calibrate_head(validation, test, "lab", rule)
    updated = manifest.model_copy(
        update={
            "temperature_diagnosis": diag.temperature,
            "temperature_lab": lab.temperature,
            "thresholds_diagnosis": _threshold_map(manifest.diagnosis_labels, diag.thresholds),
            "thresholds_lab": _threshold_map(manifest.lab_labels, lab.thresholds),
        }
    )
    median_r2: float | None = None
    mean_used: float | None = None
    if surrogate:
        fitted = fit_surrogate(
            validation.lab_probability,
            validation.diagnosis_probability,
            manifest.diagnosis_labels,
            manifest.lab_labels,
            seed=seed,
        )
        save_surrogate(bundle.path, fitted)
        r2 = [v for v in fitted.cv_r2 if v is not None]
        median_r2 = float(np.median(r2)) if r2 else None
        mean_used = float((np.abs(fitted.coefficient_matrix()) > 0).sum(axis=1).mean())
    train = store.split_indices("train")
    diag_cols = label_columns(manifest.diagnosis_labels, store.manifest.diagnosis_labels, "diagnosis", store)
    lab_cols = label_columns(manifest.lab_labels, store.manifest.lab_labels, "lab", store)
    save_association(
        bundle.path,
        fit_association(
            store.diagnosis_targets()[train][:, diag_cols],
            store.lab_targets()[train][:, lab_cols],
            manifest.diagnosis_labels,
            manifest.lab_labels,
        ),
    )
    write_manifest(bundle, updated)
    summary = CalibrationSummary(
        bundle=str(bundle.path),
        store=str(store.path),
        threshold_rule=rule,
        n_validation=len(validation),
        n_test=len(test),
        diagnosis=diag.summary,
        lab=lab.summary,
        surrogate_median_cv_r2=median_r2,
        surrogate_mean_labs_used=mean_used,
    )
    write_text_atomically(bundle.path / REPORT_FILE, summary.model_dump_json(indent=2) + "\n", create_parent=False)
    return summary


class _HeadResult:
    def __init__(self, temperature: float, thresholds: NDArray[np.float64], summary: HeadCalibration) -> None:
        self.temperature = temperature
        self.thresholds = thresholds
        self.summary = summary


def _calibrate_head(validation: FoldOutputs, test: FoldOutputs, head: str, rule: ThresholdRule) -> _HeadResult:
    def probs_targets(fold: FoldOutputs) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        if head == "diagnosis":
            return fold.diagnosis_probability, fold.diagnosis_targets
        return fold.lab_probability, fold.lab_targets

    val_prob, val_target = probs_targets(validation)
    if not np.isfinite(val_target).any():
        raise CalibrationError(f"validation fold has no known {head} targets")
    temperature = fit_temperature(logit(val_prob), val_target)
    val_calibrated = apply_temperature(val_prob, temperature)
    thresholds = choose_thresholds(val_target, val_calibrated, rule)
    informative = int(sum(_has_both_classes(val_target[:, k]) for k in range(val_target.shape[1])))
    test_prob, test_target = probs_targets(test)
    summary = HeadCalibration(
        temperature=temperature,
        ece_validation_before=_ece(val_target, val_prob),
        ece_validation_after=_ece(val_target, val_calibrated),
        ece_test_before=_ece(test_target, test_prob),
        ece_test_after=_ece(test_target, apply_temperature(test_prob, temperature)),
        n_positive_thresholds=informative,
    )
    return _HeadResult(temperature, np.asarray(thresholds, dtype=np.float64), summary)


def _has_both_classes(column: NDArray[np.float32]) -> bool:
    known = column[np.isfinite(column)]
    return bool(known.size and known.min() != known.max())


def _ece(targets: NDArray[np.float32], probs: NDArray[np.float32]) -> float | None:
    if targets.shape[0] == 0:
        return None
    value = expected_calibration_error(targets, probs, n_bins=ECE_BINS)
    return value if math.isfinite(value) else None


def _threshold_map(labels: list[str], thresholds: NDArray[np.float64]) -> dict[str, float]:
    return {label: float(t) for label, t in zip(labels, thresholds, strict=True)}


def write_manifest(bundle: Bundle, manifest: BundleManifest) -> Path:
    """Validate, then replace bundle.json atomically; the weights file is not touched."""
    BundleManifest.model_validate(manifest.model_dump())
    return write_text_atomically(
        bundle.path / MANIFEST_FILE, manifest.model_dump_json(indent=2) + "\n", create_parent=False
    )


def read_calibration_report(bundle_path: Path) -> dict[str, Any] | None:
    path = Path(bundle_path) / REPORT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
