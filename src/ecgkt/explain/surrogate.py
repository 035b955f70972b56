"""The sparse surrogate: predicted lab probabilities → diagnosis logit, one L1 model per diagnosis.

Why a surrogate: the diagnosis and lab heads both read h_x, so the lab probabilities carry part of
what drives each diagnosis. A sparse linear model from the P lab probabilities to each diagnosis
logit, fitted on the validation fold, names the few labs that account for that diagnosis, and its
fidelity (R² against the model's own logit) says how much of the diagnosis the labs explain.
Its score for one record, coefficient × lab probability, is the lab's contribution to the
surrogate's logit in logit units.

Inputs are the *raw* window-averaged probabilities (before temperature scaling), so recalibrating a
bundle never invalidates its surrogate. Stored as JSON inside the bundle folder (no pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from ecgkt.atomic_files import write_text_atomically
from ecgkt.explain.base import ExplanationError

SURROGATE_FILE = "explanation_surrogate.json"
SURROGATE_FORMAT_VERSION = 1
MIN_RECORDS = 20
LOGIT_EPS = 1e-6


class LabSurrogate(BaseModel):
    """Coefficients on the raw probability scale: logit_k ≈ intercept_k + Σ_p coef[k][p] · prob_p."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = SURROGATE_FORMAT_VERSION
    diagnosis_labels: list[str]
    lab_labels: list[str]
    coefficients: list[list[float]]  # (K, P)
    intercepts: list[float]  # (K,)
    lab_mean: list[float]  # (P,) mean raw lab probability on the fitting fold (the "typical patient")
    alphas: list[float]  # chosen L1 strength per diagnosis (on standardised inputs)
    cv_r2: list[float | None]  # cross-validated R² on the fitting fold; None = constant target
    n_records: int
    fitted_on: str = "validation fold"

    def coefficient_matrix(self) -> NDArray[np.float32]:
        return np.asarray(self.coefficients, dtype=np.float32).reshape(len(self.diagnosis_labels), len(self.lab_labels))

    def predict_logits(self, lab_probability: NDArray[np.floating]) -> NDArray[np.float32]:
        """(N, P) raw lab probabilities → (N, K) surrogate diagnosis logits."""
        probs = self._check(lab_probability)
        out = probs @ self.coefficient_matrix().T + np.asarray(self.intercepts, dtype=np.float32)
        return out.astype(np.float32)

    def contributions(self, lab_probability: NDArray[np.floating], centered: bool = False) -> NDArray[np.float32]:
        """(N, P) → (N, K, P): each lab's share of the surrogate logit.

        Uncentred: coefficient × probability (share relative to a lab probability of 0). Centred:
        coefficient × (probability − fitting-fold mean), the linear-model attribution relative to
        a typical patient; these sum to the surrogate logit minus its mean.
        """
        return SurrogateArrays.of(self).contributions(lab_probability, centered=centered)

    def check_labels(self, diagnosis_labels: Sequence[str], lab_labels: Sequence[str]) -> None:
        if list(diagnosis_labels) != self.diagnosis_labels or list(lab_labels) != self.lab_labels:
            raise ExplanationError(
                "the explanation surrogate was fitted for other labels than the bundle's; "
                "re-run `ecgkt calibrate BUNDLE STORE`"
            )

    def _check(self, lab_probability: NDArray[np.floating]) -> NDArray[np.float32]:
        probs = np.asarray(lab_probability, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] != len(self.lab_labels):
            raise ExplanationError(
                f"surrogate expects (N, {len(self.lab_labels)}) lab probabilities, got {probs.shape}"
            )
        return probs


@dataclass(frozen=True, eq=False)
class SurrogateArrays:
    """A surrogate's coefficients as arrays, for scoring many records without re-reading the JSON lists.

    `LabSurrogate` is the stored (JSON) form; converting its (K, P) nested lists to an array costs about
    as much as scoring a record, so the prediction engine converts once per loaded bundle.
    """

    coefficients: NDArray[np.float32]  # (K, P)
    lab_mean: NDArray[np.float32]  # (P,)

    @classmethod
    def of(cls, surrogate: LabSurrogate) -> SurrogateArrays:
        return cls(surrogate.coefficient_matrix(), np.asarray(surrogate.lab_mean, dtype=np.float32))

    def contributions(self, lab_probability: NDArray[np.floating], centered: bool = False) -> NDArray[np.float32]:
        """(N, P) → (N, K, P); see `LabSurrogate.contributions`."""
        probs = np.asarray(lab_probability, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] != self.coefficients.shape[1]:
            raise ExplanationError(
                f"surrogate expects (N, {self.coefficients.shape[1]}) lab probabilities, got {probs.shape}"
            )
        if centered:
            probs = probs - self.lab_mean[None, :]
        return (self.coefficients[None, :, :] * probs[:, None, :]).astype(np.float32)


def logit(probability: NDArray[np.floating]) -> NDArray[np.float64]:
    p = np.clip(np.asarray(probability, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def fit_surrogate(
    lab_probability: NDArray[np.floating],
    diagnosis_probability: NDArray[np.floating],
    diagnosis_labels: Sequence[str],
    lab_labels: Sequence[str],
    *,
    seed: int = 0,
    n_folds: int = 5,
) -> LabSurrogate:
    """Fit one LassoCV per diagnosis on standardised lab probabilities; coefficients are returned
    on the raw probability scale.

    Standardising first lets one penalty treat rare and common abnormalities alike; the CV choice of
    alpha (per diagnosis, `n_folds` folds) trades sparsity against fidelity without a hand-set knob.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoCV
    from sklearn.model_selection import KFold

    x = np.asarray(lab_probability, dtype=np.float64)
    targets = logit(diagnosis_probability)
    if x.shape[0] < MIN_RECORDS:
        raise ExplanationError(f"surrogate needs at least {MIN_RECORDS} records, got {x.shape[0]}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = (x - mean) / scale
    folds = KFold(n_splits=min(n_folds, x.shape[0]), shuffle=True, random_state=seed)
    coefficients = np.zeros((targets.shape[1], x.shape[1]))
    intercepts = np.zeros(targets.shape[1])
    alphas: list[float] = []
    cv_r2: list[float | None] = []
    for k in range(targets.shape[1]):
        y = targets[:, k]
        variance = float(y.var())
        if variance < 1e-12:
            intercepts[k] = float(y.mean())
            alphas.append(0.0)
            cv_r2.append(None)
            continue
        with warnings.catch_warnings():
            # The CV path visits tiny penalties on strongly collinear inputs (all lab probabilities read
            # the same h_x), where coordinate descent converges slowly; those alphas are not chosen.
            warnings.simplefilter("ignore", ConvergenceWarning)
            lasso = LassoCV(alphas=30, cv=folds, max_iter=5000, random_state=seed).fit(z, y)
        raw = lasso.coef_ / scale
        coefficients[k] = raw
        intercepts[k] = float(lasso.intercept_ - raw @ mean)
        alphas.append(float(lasso.alpha_))
        best = int(np.argmin(np.abs(lasso.alphas_ - lasso.alpha_)))
        cv_r2.append(float(1.0 - lasso.mse_path_[best].mean() / variance))
    return LabSurrogate(
        diagnosis_labels=list(diagnosis_labels),
        lab_labels=list(lab_labels),
        coefficients=coefficients.tolist(),
        intercepts=intercepts.tolist(),
        lab_mean=mean.tolist(),
        alphas=alphas,
        cv_r2=cv_r2,
        n_records=int(x.shape[0]),
    )


def save_surrogate(bundle_path: Path, surrogate: LabSurrogate) -> Path:
    """Write `explanation_surrogate.json` into the bundle folder atomically (temp file + rename)."""
    return write_text_atomically(
        Path(bundle_path) / SURROGATE_FILE, surrogate.model_dump_json() + "\n", create_parent=False
    )


def load_surrogate(bundle_path: Path) -> LabSurrogate | None:
    """The bundle's surrogate, or None when it has none (bundle not yet calibrated)."""
    path = Path(bundle_path) / SURROGATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        return LabSurrogate.model_validate(raw)
    except (json.JSONDecodeError, ValidationError) as error:
        raise ExplanationError(f"{path}: unreadable explanation surrogate: {error}") from None
