"""The cohort association used by the default explanation: phi(diagnosis, lab abnormality) in training.

The default explanation (`association`, chosen by measurement, see docs/explanations.md) scores a
lab abnormality p for a diagnosis k in one patient as

    phi_train(k, p) × P(lab p abnormal | this ECG)

— "the model predicts abnormality p for this patient, and p goes with diagnosis k in the cohort the
model was trained on". The first factor comes from the training fold's labels (masked where a lab
was not measured), the second from the model's lab head on the shared embedding. It needs only
lab probabilities at inference, so it also works behind the ONNX runner.

Stored as `explanation_association.json` in the bundle folder (JSON, no pickle) by `ecgkt calibrate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from ecgkt.atomic_files import write_text_atomically
from ecgkt.explain.base import ExplanationError, RecordOutputs
from ecgkt.explain.supporting_labs import phi_association

ASSOCIATION_FILE = "explanation_association.json"


class LabAssociation(BaseModel):
    """phi[k][p]: Pearson correlation of the 0/1 targets of diagnosis k and lab abnormality p."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = 1
    diagnosis_labels: list[str]
    lab_labels: list[str]
    phi: list[list[float]]  # (K, P)
    n_records: int
    fitted_on: str = "training fold"

    def matrix(self) -> NDArray[np.float32]:
        return np.asarray(self.phi, dtype=np.float32).reshape(len(self.diagnosis_labels), len(self.lab_labels))

    def check_labels(self, diagnosis_labels: Sequence[str], lab_labels: Sequence[str]) -> None:
        if list(diagnosis_labels) != self.diagnosis_labels or list(lab_labels) != self.lab_labels:
            raise ExplanationError(
                "the explanation association was computed for other labels than the bundle's; "
                "re-run `ecgkt calibrate BUNDLE STORE`"
            )


def fit_association(
    diagnosis_targets: NDArray[np.floating],
    lab_targets: NDArray[np.floating],
    diagnosis_labels: Sequence[str],
    lab_labels: Sequence[str],
) -> LabAssociation:
    return LabAssociation(
        diagnosis_labels=list(diagnosis_labels),
        lab_labels=list(lab_labels),
        phi=phi_association(diagnosis_targets, lab_targets).tolist(),
        n_records=int(np.asarray(diagnosis_targets).shape[0]),
    )


class AssociationExplainer:
    """score[n, k, p] = phi[k, p] × lab_probability[n, p]."""

    name = "association"

    def __init__(self, association: LabAssociation) -> None:
        self.association = association
        self._phi = association.matrix()

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        probs = np.asarray(outputs.lab_probability, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] != self._phi.shape[1]:
            raise ExplanationError(
                f"association expects (N, {self._phi.shape[1]}) lab probabilities, got {probs.shape}"
            )
        return (self._phi[None, :, :] * probs[:, None, :]).astype(np.float32)


def save_association(bundle_path: Path, association: LabAssociation) -> Path:
    """Write `explanation_association.json` into the bundle folder atomically."""
    return write_text_atomically(
        Path(bundle_path) / ASSOCIATION_FILE, association.model_dump_json() + "\n", create_parent=False
    )


def load_association(bundle_path: Path) -> LabAssociation | None:
    """The bundle's association, or None when it has none (bundle not yet calibrated)."""
    path = Path(bundle_path) / ASSOCIATION_FILE
    if not path.is_file():
        return None
    try:
        return LabAssociation.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as error:
        raise ExplanationError(f"{path}: unreadable explanation association: {error}") from None
