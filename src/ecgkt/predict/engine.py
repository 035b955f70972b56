"""The prediction engine: one ECG in, calibrated diagnosis and lab probabilities plus explanations out.

Used by `ecgkt predict`, `ecgkt report` and the HTTP service, so every front end returns the same
numbers. The evaluation path mirrors training exactly:

1. the ECG is preprocessed with the bundle's spec and cut into 2.5 s windows (signals.readers);
2. the runner (the bundle's torch model, or an onnxruntime session passed in by the service) gives
   per-window logits, whose SIGMOIDS are averaged over the windows (as training evaluates);
3. the bundle's temperature T, when calibrated, is applied to the averaged prediction:
   p = σ(logit(p̄) / T). T was fitted on exactly this quantity (explain/calibrate_bundle.py);
4. a label is called positive when p ≥ its stored threshold (Youden's J on validation), or 0.5 when
   the bundle is not calibrated (a note says so);
5. each positive diagnosis gets its supporting lab abnormalities (explain/supporting_labs.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from ecgkt import __version__
from ecgkt.bundle import Bundle, BundleManifest, load_bundle
from ecgkt.bundle_runner import Runner, torch_runner, window_average
from ecgkt.evaluate.calibration import apply_temperature, thresholds_for
from ecgkt.explain.association import AssociationExplainer, load_association
from ecgkt.explain.base import PREDICTION_METHODS, MissingExplanationError
from ecgkt.explain.supporting_labs import (
    DEFAULT_TOP_LABS,
    GradientAlignment,
    MethodName,
    RecordOutputs,
    SupportExplainer,
    SurrogateExplainer,
    ranked_rows,
)
from ecgkt.explain.surrogate import load_surrogate
from ecgkt.measure import measure_ecg
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.preprocess import PreprocessSpec
from ecgkt.signals.readers import EcgInput, prepare_windows, read_ecg

# Chosen by `ecgkt explain-eval` on the synthetic cohort; see docs/explanations.md.
DEFAULT_EXPLANATION: MethodName = "association"
# Used when the default needs something the bundle lacks (before `ecgkt calibrate`).
FALLBACK_EXPLANATION: MethodName = "gradient_x_probability"
FALLBACK_NOTE = (
    "bundle has no fitted explanation (run `ecgkt calibrate`): supporting labs ranked by "
    "gradient alignment × lab probability instead"
)
KIND_NOTE_PREFIX = "supporting labs ("  # h16: "supporting labs (METHOD): what kind of explanation"
UNCALIBRATED_NOTE = "bundle not calibrated (run `ecgkt calibrate`): raw probabilities, thresholds 0.5"


class LabSupport(BaseModel):
    label: str
    probability: float
    score: float


class DiagnosisPrediction(BaseModel):
    code: str
    title: str
    probability: float
    threshold: float
    positive: bool
    validation_auroc: float | None
    supporting_labs: list[LabSupport]


class LabPrediction(BaseModel):
    label: str
    probability: float
    threshold: float
    positive: bool
    validation_auroc: float | None


class PredictionResult(BaseModel):
    source: str
    ecgkt_version: str
    n_windows: int
    notes: list[str]
    diagnoses: list[DiagnosisPrediction]  # sorted by probability, descending
    labs: list[LabPrediction]
    # Heart rate, rhythm regularity, PR/QRS/QT/QTc, axes (ecgkt.measure); None values are flagged.
    measurements: dict[str, Any] | None = None


def preprocess_spec(manifest: BundleManifest) -> PreprocessSpec:
    """The bundle's preprocessing contract, used as is (one model: no conversion)."""
    return manifest.preprocessing


def build_explainer(bundle: Bundle, method: MethodName | None) -> tuple[SupportExplainer | None, list[str]]:
    """The explainer for `method` (None = the measured default), and notes on any fallback."""
    manifest = bundle.manifest
    # h16: the bundle's own default (chosen at calibration) and the patient-specific methods.
    from ecgkt.explain.patient import PATIENT_METHODS, build_patient_explainer, bundle_default_method

    chosen = method or bundle_default_method(bundle.path)
    if chosen in PATIENT_METHODS:
        patient = build_patient_explainer(
            bundle.path, bundle.model, str(chosen), manifest.diagnosis_labels, manifest.lab_labels
        )
        if patient is not None:
            return patient, []
        if method is not None:
            raise MissingExplanationError(
                f"{bundle.path}: bundle has no fitted {chosen} explanation; run `ecgkt calibrate BUNDLE STORE`"
            )
    elif chosen is not None and method is None and chosen in PREDICTION_METHODS:
        method = chosen
    wanted = method or DEFAULT_EXPLANATION
    notes: list[str] = []
    if wanted == "association":
        association = load_association(bundle.path)
        if association is not None:
            association.check_labels(manifest.diagnosis_labels, manifest.lab_labels)
            return AssociationExplainer(association), notes
    elif wanted in ("surrogate", "surrogate_centered"):
        surrogate = load_surrogate(bundle.path)
        if surrogate is not None:
            surrogate.check_labels(manifest.diagnosis_labels, manifest.lab_labels)
            return SurrogateExplainer(surrogate, centered=wanted == "surrogate_centered"), notes
    if wanted in ("association", "surrogate", "surrogate_centered"):
        if method is not None:
            raise MissingExplanationError(
                f"{bundle.path}: bundle has no fitted {wanted} explanation; run `ecgkt calibrate BUNDLE STORE`"
            )
        notes.append(FALLBACK_NOTE)
        wanted = FALLBACK_EXPLANATION
    if wanted in ("gradient", "gradient_x_probability"):
        return GradientAlignment(bundle.model, weight_by_probability=wanted == "gradient_x_probability"), notes
    raise ValueError(f"explanation method {wanted!r} is an evaluation baseline, not offered for prediction")


def explanation_method_of(result: PredictionResult) -> MethodName:
    """Which method produced a result's supporting labs (the engine notes every fallback)."""
    for note in result.notes:  # h16: the engine names the method in its explanation-kind note
        if note.startswith(KIND_NOTE_PREFIX):
            return cast(MethodName, note[len(KIND_NOTE_PREFIX) :].split(")", 1)[0])
    return FALLBACK_EXPLANATION if FALLBACK_NOTE in result.notes else DEFAULT_EXPLANATION


class Predictor:
    """Holds one loaded bundle; thread-compatible for reads (the service shares one instance).

    Everything that depends only on the bundle (thresholds, titles, validation AUROCs, the
    explainer's arrays, the notes) is computed here once, so a prediction does only per-ECG work:
    read, preprocess, run the model, average, calibrate, explain, and one validation of the result.
    """

    def __init__(
        self,
        bundle: Bundle,
        runner: Runner | None = None,
        *,
        explanation: MethodName | None = None,
        top_labs: int = DEFAULT_TOP_LABS,
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.runner: Runner = runner if runner is not None else torch_runner(bundle.model)
        self.spec = preprocess_spec(bundle.manifest)
        self.explainer, self._explainer_notes = build_explainer(bundle, explanation)
        self.top_labs = top_labs
        manifest = self.manifest
        self.diagnosis_thresholds = thresholds_for(manifest.diagnosis_labels, manifest.thresholds_diagnosis)
        self.lab_thresholds = thresholds_for(manifest.lab_labels, manifest.thresholds_lab)
        self.calibrated = manifest.temperature_diagnosis is not None and manifest.thresholds_diagnosis is not None
        self._diagnosis_fixed = [
            {
                "code": code,
                "title": manifest.diagnosis_titles.get(code, ""),
                "threshold": threshold,
                "validation_auroc": _finite(manifest.validation_auroc_diagnosis.get(code)),
            }
            for code, threshold in zip(manifest.diagnosis_labels, self.diagnosis_thresholds.tolist(), strict=True)
        ]
        self._lab_fixed = [
            {
                "label": label,
                "threshold": threshold,
                "validation_auroc": _finite(manifest.validation_auroc_lab.get(label)),
            }
            for label, threshold in zip(manifest.lab_labels, self.lab_thresholds.tolist(), strict=True)
        ]

    @classmethod
    def from_path(cls, bundle_path: Path) -> Predictor:
        return cls(load_bundle(bundle_path))

    @property
    def explanation_method(self) -> str:
        return self.explainer.name if self.explainer is not None else "none"

    def predict_path(self, path: Path, **reader_kwargs: Any) -> PredictionResult:
        return self.predict(read_ecg(path, **reader_kwargs))

    def predict(self, ecg: EcgInput) -> PredictionResult:
        manifest = self.manifest
        windows = prepare_windows(ecg, self.spec, manifest.preprocessing.window_samples)
        diag_logits, lab_logits = self.runner(windows)
        self._check_runner_output(diag_logits, lab_logits, windows.shape[0])
        raw_diag = window_average(diag_logits)
        raw_lab = window_average(lab_logits)
        diag_prob = apply_temperature(raw_diag, manifest.temperature_diagnosis)
        lab_prob = apply_temperature(raw_lab, manifest.temperature_lab)
        if not (np.isfinite(diag_prob).all() and np.isfinite(lab_prob).all()):
            # Never answer with a NaN/inf probability (issue 18): an input that produces one is refused.
            raise EcgInputError(
                ecg.source, "the model produced non-finite probabilities for this input; refused", "non_finite_output"
            )
        positive_diag = diag_prob >= self.diagnosis_thresholds
        lab_probabilities = lab_prob.tolist()
        supporting = self._supporting_labs(raw_diag, raw_lab, windows, positive_diag, lab_probabilities)

        diagnoses = [
            {
                **fixed,
                "probability": probability,
                "positive": positive,
                "supporting_labs": supporting.get(k, []),
            }
            for k, (fixed, probability, positive) in enumerate(
                zip(self._diagnosis_fixed, diag_prob.tolist(), positive_diag.tolist(), strict=True)
            )
        ]
        diagnoses.sort(key=lambda d: d["probability"], reverse=True)
        labs = [
            {**fixed, "probability": probability, "positive": positive}
            for fixed, probability, positive in zip(
                self._lab_fixed, lab_probabilities, (lab_prob >= self.lab_thresholds).tolist(), strict=True
            )
        ]
        # One validation of the whole nested result: ~2× faster than building ~200 models one by one.
        return PredictionResult.model_validate(
            {
                "source": ecg.source,
                "ecgkt_version": __version__,
                "n_windows": int(windows.shape[0]),
                "notes": [*ecg.notes, *self._model_notes()],
                "diagnoses": diagnoses,
                "labs": labs,
                "measurements": measure_ecg(ecg.signal_mv, ecg.sampling_rate_hz).as_dict(),
            }
        )

    def _supporting_labs(
        self,
        raw_diag: NDArray[np.float32],
        raw_lab: NDArray[np.float32],
        windows: NDArray[np.float32],
        positive_diag: NDArray[np.bool_],
        lab_probabilities: list[float],
    ) -> dict[int, list[dict[str, Any]]]:
        """Supporting labs of each positive diagnosis (index → LabSupport fields), best first."""
        if self.explainer is None or not positive_diag.any():
            return {}
        outputs = RecordOutputs(
            lab_probability=raw_lab[None, :], diagnosis_probability=raw_diag[None, :], windows=windows[None]
        )
        support_scores = self.explainer.scores(outputs)[0]
        positives = np.flatnonzero(positive_diag)
        lab_labels = self.manifest.lab_labels
        return {
            k: [{"label": lab_labels[i], "probability": lab_probabilities[i], "score": score} for i, score in row]
            for k, row in zip(positives.tolist(), ranked_rows(support_scores[positives], self.top_labs), strict=True)
        }

    def _model_notes(self) -> list[str]:
        notes = list(self._explainer_notes)
        if self.explainer is not None:  # h16: one line on what kind of explanation is shown
            from ecgkt.explain.patient import explanation_kind

            notes.append(f"{KIND_NOTE_PREFIX}{self.explainer.name}): {explanation_kind(self.explainer.name)}")
        if not self.calibrated:
            notes.append(UNCALIBRATED_NOTE)
        return notes

    def _check_runner_output(self, diag: NDArray[np.float32], lab: NDArray[np.float32], n_windows: int) -> None:
        expected = ((n_windows, len(self.manifest.diagnosis_labels)), (n_windows, len(self.manifest.lab_labels)))
        if (diag.shape, lab.shape) != expected:
            raise RuntimeError(f"runner returned shapes {diag.shape}, {lab.shape}; expected {expected}")


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
