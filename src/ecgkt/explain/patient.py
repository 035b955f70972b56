"""Explanations about *this* patient's model evidence, and the fitted parts they need.

The population methods (`cooccurrence`, `direct`, `association`) rank labs by how they go with a
diagnosis in the cohort; the methods here rank them by what the model computes for this ECG:

- `direct_x_probability`: the population's direct link (explain/population.py), kept only where
  positive, × the model's probability of lab p for this ECG — "p goes with k beyond the other
  diagnoses, and the model predicts p for this patient".
- `concept_shapley`: a concept-bottleneck read-out of the model. The diagnosis logit is written as
  a non-negative sparse linear function of the lab head's logits (the concepts) plus a residual,
  fitted on the validation fold against the model's own diagnosis logits. For a linear read-out the
  exact Shapley value of concept p against the cohort baseline z̄ (validation mean) is
  w_kp · (z_p − z̄_p); their sum over p divided by the model's logit − its baseline is the
  *completeness* (the share of this diagnosis call the lab concepts account for; the rest is the
  residual). Non-negative weights: a lab can only support a diagnosis by being more likely than usual.
- `concept_shapley_direct`: the same read-out restricted to the labs with a positive direct
  population link to the diagnosis (a prior on which concepts may enter).
- `embedding_counterfactual`: on the real model. Each lab p has a direction u_p in the embedding
  (the mean gradient of its logit on the validation fold). For this ECG, remove the component of
  (h − h̄) along u_p and record how much diagnosis k's logit falls (averaged over windows).

The fitted parts live in `explanation_patient.json` in the bundle (JSON, no pickle), written by
`fit_patient_explanation` (called from explain/bundle_calibration.py), together with the bundle's
default method, chosen on the validation fold against the per-patient ground truth when available.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from ecgkt.atomic_files import write_text_atomically
from ecgkt.explain.base import PATIENT_METHODS
from ecgkt.explain.supporting_labs import ExplanationError, RecordOutputs, SupportExplainer

if TYPE_CHECKING:
    from ecgkt.bundle import EcgOnlyModel

__all__ = [
    "MEASURED_DEFAULT",
    "PATIENT_FILE",
    "PATIENT_METHODS",
    "POPULATION_METHODS",
    "AssociationLift",
    "ConceptShapley",
    "DirectXProbability",
    "EmbeddingCounterfactual",
    "PatientExplanation",
    "build_patient_explainer",
    "bundle_default_method",
    "explanation_kind",
    "fit_concept_head",
    "lab_directions",
    "load_patient_explanation",
    "save_patient_explanation",
]

PATIENT_FILE = "explanation_patient.json"
POPULATION_METHODS: frozenset[str] = frozenset({"cooccurrence", "direct", "probability"})
LOGIT_EPS = 1e-6
MIN_RECORDS = 20


def explanation_kind(method: str) -> str:
    """One line saying what kind of explanation a method shows (report and service)."""
    if method in ("cooccurrence", "direct"):
        return "population association: how these abnormalities go with the diagnosis in the training cohort"
    if method == "association":
        return (
            "population association weighted by this ECG's lab predictions "
            "(cohort link × the model's probability for this patient)"
        )
    if method == "association_lift":
        return (
            "population association weighted by how much more likely than usual the model finds each "
            "abnormality in this ECG (cohort link × this patient's predicted lift)"
        )
    if method == "direct_x_probability":
        return (
            "population direct link weighted by this ECG's lab predictions "
            "(cohort link beyond other diagnoses × the model's probability for this patient)"
        )
    if method in ("concept_shapley", "concept_shapley_direct"):
        return "this patient's model evidence: each abnormality's share of the diagnosis score (Shapley values)"
    if method == "embedding_counterfactual":
        return "this patient's model evidence: how much the diagnosis score falls without each abnormality's signal"
    return "this patient's model evidence (alignment of the model's diagnosis and lab outputs)"


def _logit(p: NDArray[np.floating]) -> NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(q) - np.log1p(-q)


class PatientExplanation(BaseModel):
    """Fitted parts of the patient-specific methods; all matrices are (K, P) in the bundle's label order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = 1
    diagnosis_labels: list[str]
    lab_labels: list[str]
    direct: list[list[float]]  # population direct links (training fold)
    concept_weights: list[list[float]]  # ≥ 0, on lab logits (validation fold)
    concept_direct_weights: list[list[float]]  # the same, restricted to positive direct links
    concept_intercepts: list[float]
    concept_direct_intercepts: list[float]
    concept_baseline: list[float]  # (P,) mean raw lab logit on validation
    diagnosis_baseline: list[float]  # (K,) mean raw diagnosis logit on validation
    concept_r2: list[float | None]  # in-sample R² of the read-out per diagnosis
    phi: list[list[float]] | None = None  # (K, P) label association in the training fold
    lab_mean_probability: list[float] | None = None  # (P,) mean raw lab probability on validation
    embedding_mean: list[float] | None = None  # (d,) h̄ on validation
    lab_directions: list[list[float]] | None = None  # (P, d) unit directions
    default_method: str | None = None
    default_reason: str = ""
    n_records: int = 0

    def matrix(self, name: str) -> NDArray[np.float32]:
        return np.asarray(getattr(self, name), dtype=np.float32).reshape(
            len(self.diagnosis_labels), len(self.lab_labels)
        )

    def check_labels(self, diagnosis_labels: Sequence[str], lab_labels: Sequence[str]) -> None:
        if list(diagnosis_labels) != self.diagnosis_labels or list(lab_labels) != self.lab_labels:
            raise ExplanationError(
                "the patient explanation was fitted for other labels than the bundle's; "
                "re-run `ecgkt calibrate BUNDLE STORE`"
            )


def fit_concept_head(
    lab_logits: NDArray[np.floating],
    diagnosis_logits: NDArray[np.floating],
    allowed: NDArray[np.bool_] | None = None,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[float | None]]:
    """Non-negative Lasso per diagnosis, lab logits → the model's diagnosis logit. Returns (W, b, R²).

    The L1 strength is chosen by 5-fold cross-validation per diagnosis (LassoCV, positive=True).
    `allowed` (K, P) restricts which labs may enter each diagnosis.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LassoCV

    z = np.asarray(lab_logits, dtype=np.float64)
    y = np.asarray(diagnosis_logits, dtype=np.float64)
    n, n_labs = z.shape
    n_diag = y.shape[1]
    weights = np.zeros((n_diag, n_labs))
    intercepts = y.mean(axis=0) if n else np.zeros(n_diag)
    r2: list[float | None] = [None] * n_diag
    if n < MIN_RECORDS:
        return weights, intercepts, r2
    z_mean, z_sd = z.mean(axis=0), z.std(axis=0)
    z_sd[z_sd < 1e-9] = 1.0
    zs = (z - z_mean) / z_sd
    for k in range(n_diag):
        columns = np.arange(n_labs) if allowed is None else np.flatnonzero(allowed[k])
        total = float(((y[:, k] - y[:, k].mean()) ** 2).sum())
        if columns.size == 0 or total < 1e-12:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LassoCV(positive=True, cv=5, alphas=30, random_state=seed, max_iter=5000)
            model.fit(zs[:, columns], y[:, k])
        w = np.zeros(n_labs)
        w[columns] = model.coef_ / z_sd[columns]
        weights[k] = w
        intercepts[k] = float(model.intercept_ - (model.coef_ * z_mean[columns] / z_sd[columns]).sum())
        residual = y[:, k] - (z @ w + intercepts[k])
        r2[k] = float(1.0 - (residual**2).sum() / total)
    return weights, intercepts, r2


class AssociationLift:
    """score = phi(k, p) × P(lab p | this ECG) / mean P(lab p) on validation: the cohort link times this
    patient's predicted lift, so a rare abnormality the model finds unusually likely here is not demoted
    by its low base rate (as it is by `association`)."""

    name = "association_lift"

    def __init__(self, fitted: PatientExplanation) -> None:
        if fitted.phi is None or fitted.lab_mean_probability is None:
            raise ExplanationError(f"{self.name}: the bundle has no fitted association; re-run `ecgkt calibrate`")
        self.phi = fitted.matrix("phi")
        self.mean = np.maximum(np.asarray(fitted.lab_mean_probability, dtype=np.float32), 1e-4)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        probs = np.asarray(outputs.lab_probability, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] != self.mean.size:
            raise ExplanationError(f"{self.name} expects (N, {self.mean.size}) lab probabilities")
        return (self.phi[None, :, :] * (probs / self.mean)[:, None, :]).astype(np.float32)


class DirectXProbability:
    """score = max(direct link, 0) × P(lab p | this ECG)."""

    name = "direct_x_probability"

    def __init__(self, direct: NDArray[np.floating]) -> None:
        self.direct = np.maximum(np.asarray(direct, dtype=np.float32), 0.0)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        probs = np.asarray(outputs.lab_probability, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] != self.direct.shape[1]:
            raise ExplanationError(f"{self.name} expects (N, {self.direct.shape[1]}) lab probabilities")
        return (self.direct[None, :, :] * probs[:, None, :]).astype(np.float32)


class ConceptShapley:
    """score[n, k, p] = w_kp (z_np − z̄_p): exact Shapley value of lab concept p for the read-out of diagnosis k."""

    def __init__(self, fitted: PatientExplanation, restricted: bool = False) -> None:
        self.name: str = "concept_shapley_direct" if restricted else "concept_shapley"
        self.weights = fitted.matrix("concept_direct_weights" if restricted else "concept_weights")
        self.intercepts = np.asarray(
            fitted.concept_direct_intercepts if restricted else fitted.concept_intercepts, dtype=np.float64
        )
        self.baseline = np.asarray(fitted.concept_baseline, dtype=np.float32)
        self.diagnosis_baseline = np.asarray(fitted.diagnosis_baseline, dtype=np.float64)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        z = _logit(outputs.lab_probability).astype(np.float32)
        if z.ndim != 2 or z.shape[1] != self.baseline.size:
            raise ExplanationError(f"{self.name} expects (N, {self.baseline.size}) lab probabilities")
        return (self.weights[None, :, :] * (z - self.baseline)[:, None, :]).astype(np.float32)

    def completeness(self, outputs: RecordOutputs) -> NDArray[np.float64]:
        """(N, K) Σ_p Shapley / (model logit − baseline logit): the share the lab concepts account for."""
        contributions = self.scores(outputs).sum(axis=2).astype(np.float64)
        deviation = _logit(outputs.diagnosis_probability) - self.diagnosis_baseline
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(deviation) > 1e-6, contributions / deviation, np.nan)


# ---- the embedding: lab directions and counterfactual removal -------------------------------


def encode_windows(model: EcgOnlyModel, windows: NDArray[np.float32], chunk: int = 256) -> NDArray[np.float32]:
    """(N, W, 12, L) → (N, W, d) embeddings, without gradients."""
    n, w = windows.shape[:2]
    flat = windows.reshape(n * w, *windows.shape[2:])
    parts = []
    model.eval()
    with torch.no_grad():
        for start in range(0, flat.shape[0], chunk):
            parts.append(model.encode(torch.from_numpy(np.ascontiguousarray(flat[start : start + chunk]))).numpy())
    return np.concatenate(parts).reshape(n, w, -1).astype(np.float32)


def lab_directions(model: EcgOnlyModel, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
    """(P, d) unit vectors: the mean gradient of each lab logit w.r.t. h over the given windows."""
    h = torch.from_numpy(embeddings.reshape(-1, embeddings.shape[-1]).astype(np.float32))
    head = model.lab_head
    head.eval()
    jacobian = torch.func.jacrev(lambda x: head(x).sum(0))(h)  # (P, B, d)
    mean = jacobian.mean(dim=1)
    return torch.nn.functional.normalize(mean, dim=-1).detach().numpy().astype(np.float32)


def diagnosis_logits_after_removal(
    model: EcgOnlyModel, h: NDArray[np.float32], h_mean: NDArray[np.float32], basis: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Diagnosis logits (…, W, K) after removing the span of `basis` (orthonormal, (r, d)) from h − h̄."""
    deviation = h - h_mean
    removed = h - (deviation @ basis.T) @ basis
    with torch.no_grad():
        out = model.diagnosis_head(torch.from_numpy(np.ascontiguousarray(removed, dtype=np.float32)))
    return out.numpy()


class EmbeddingCounterfactual:
    """score[n, k, p] = logit_k(h) − logit_k(h without its (h − h̄) component along u_p), window mean."""

    name = "embedding_counterfactual"

    def __init__(self, model: EcgOnlyModel, fitted: PatientExplanation) -> None:
        if fitted.embedding_mean is None or fitted.lab_directions is None:
            raise ExplanationError(f"{self.name}: the bundle has no lab directions; re-run `ecgkt calibrate`")
        self.model = model
        self.h_mean = np.asarray(fitted.embedding_mean, dtype=np.float32)
        self.directions = np.asarray(fitted.lab_directions, dtype=np.float32)

    def scores(self, outputs: RecordOutputs) -> NDArray[np.float32]:
        if outputs.windows is None:
            raise ExplanationError(f"{self.name}: needs the ECG windows, not only the probabilities")
        return self.scores_from_embeddings(encode_windows(self.model, outputs.windows))

    def scores_from_embeddings(self, h: NDArray[np.float32]) -> NDArray[np.float32]:
        n, w, d = h.shape
        flat = h.reshape(n * w, d)
        with torch.no_grad():
            base = self.model.diagnosis_head(torch.from_numpy(np.ascontiguousarray(flat))).numpy()
        n_labs = self.directions.shape[0]
        out = np.empty((n, base.shape[1], n_labs), dtype=np.float32)
        for p in range(n_labs):
            after = diagnosis_logits_after_removal(self.model, flat, self.h_mean, self.directions[p : p + 1])
            out[:, :, p] = (base - after).reshape(n, w, -1).mean(axis=1)
        return out


def save_patient_explanation(bundle_path: Path, fitted: PatientExplanation) -> Path:
    return write_text_atomically(
        Path(bundle_path) / PATIENT_FILE, fitted.model_dump_json() + "\n", create_parent=False
    )


def load_patient_explanation(bundle_path: Path) -> PatientExplanation | None:
    path = Path(bundle_path) / PATIENT_FILE
    if not path.is_file():
        return None
    try:
        return PatientExplanation.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as error:
        raise ExplanationError(f"{path}: unreadable patient explanation: {error}") from None


# ---- the engine's side: which method a bundle shows, and building it --------------------------

# Measured on the synthetic cohort against the per-patient ground truth (benchmarks/results/explain_eval.md:
# co-occurrence had the highest MAP on validation and test with the Table 1 model); used when a bundle is
# calibrated without ground truth (e.g. `ecgkt benchmark`, or a real cohort).
MEASURED_DEFAULT = "cooccurrence"


def bundle_default_method(bundle_path: Path) -> str | None:
    """The default explanation recorded in the bundle by its calibration, or None."""
    try:
        fitted = load_patient_explanation(bundle_path)
    except ExplanationError:
        return None
    return None if fitted is None else fitted.default_method


def build_patient_explainer(
    bundle_path: Path, model: EcgOnlyModel, method: str, diagnosis_labels: Sequence[str], lab_labels: Sequence[str]
) -> SupportExplainer | None:
    """The explainer for one of PATIENT_METHODS, or None when the bundle has no fitted patient explanation."""
    fitted = load_patient_explanation(bundle_path)
    if fitted is None:
        return None
    fitted.check_labels(diagnosis_labels, lab_labels)
    if method in ("cooccurrence", "association_lift") and fitted.phi is None:
        raise ExplanationError(f"{bundle_path}: no fitted association for {method}; re-run `ecgkt calibrate`")
    if method == "cooccurrence":
        from ecgkt.explain.supporting_labs import CooccurrenceBaseline

        return CooccurrenceBaseline(fitted.matrix("phi"))
    if method == "direct":
        from ecgkt.explain.population import DirectBaseline

        return DirectBaseline(fitted.matrix("direct"))
    if method == "association_lift":
        return AssociationLift(fitted)
    if method == "direct_x_probability":
        return DirectXProbability(fitted.matrix("direct"))
    if method in ("concept_shapley", "concept_shapley_direct"):
        return ConceptShapley(fitted, restricted=method == "concept_shapley_direct")
    if method == "embedding_counterfactual":
        return EmbeddingCounterfactual(model, fitted)
    raise ExplanationError(f"unknown patient explanation method {method!r}")
