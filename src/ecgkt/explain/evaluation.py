"""`ecgkt explain-eval`: measure explanation methods against ground truth, and their fidelity.

Protocol (docs/explanations.md):
- the surrogate is fitted on the store's validation fold (as `ecgkt calibrate` does), the
  association (default method) and the co-occurrence baseline on the training fold; everything is
  scored on the test fold (`--split`);
- a diagnosis is explained where the engine would explain it: on the records it calls positive
  (calibrated probability ≥ the bundle's threshold, 0.5 if uncalibrated); when fewer than
  `MIN_CASES` records are called positive, on the `MIN_CASES` most probable records, so weak
  models are still measured (the count of called-positive records is reported);
- ground truth (synthetic cohorts only): a diagnosis label's true drivers are the lab
  abnormalities its latent states directly cause (explain/ground_truth.py). For each diagnosis we
  rank all P labs per record and report precision@1/3/5 and average precision, averaged over
  records, then macro-averaged over diagnoses, for every method and baseline;
- fidelity (any cohort): how well the surrogate reproduces the model's diagnosis logits on the
  held-out split (R²) and its calls (AUROC of the surrogate logit for the model's positive call).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from ecgkt.bundle import Bundle, load_bundle
from ecgkt.evaluate.calibration import apply_temperature, thresholds_for
from ecgkt.evaluate.metrics import masked_auroc_per_label
from ecgkt.explain.association import AssociationExplainer, fit_association
from ecgkt.explain.ground_truth import GroundTruth, ground_truth_drivers, load_graph
from ecgkt.explain.ranking import K_VALUES, ranking_metrics
from ecgkt.explain.store_outputs import FoldOutputs, fold_outputs, label_columns, record_windows
from ecgkt.explain.supporting_labs import (
    BASELINE_METHODS,
    METHOD_NAMES,
    CooccurrenceBaseline,
    ExplanationError,
    GradientAlignment,
    MethodName,
    ProbabilityBaseline,
    RandomBaseline,
    RecordOutputs,
    SupportExplainer,
    SurrogateExplainer,
)
from ecgkt.explain.surrogate import LabSurrogate, fit_surrogate, logit
from ecgkt.store import Split, Store

MIN_CASES = 10
DEFAULT_MAX_RECORDS = 2000


class MethodScore(BaseModel):
    method: str
    baseline: bool
    precision_at: dict[str, float]  # "1", "3", "5"
    mean_average_precision: float
    n_diagnoses: int
    n_cases: int  # (record, diagnosis) pairs scored
    ms_per_record: float
    per_diagnosis: dict[str, dict[str, float]]


class Fidelity(BaseModel):
    n_diagnoses: int
    r2_mean: float | None
    r2_median: float | None
    cv_r2_median_validation: float | None
    call_auroc_mean: float | None  # surrogate logit vs the model's positive call
    mean_labs_used: float
    per_diagnosis_r2: dict[str, float | None]


class ExplanationEvaluation(BaseModel):
    bundle: str
    store: str
    ground_truth: str | None
    split: str
    n_records: int
    n_validation_records: int
    calibrated: bool
    selection: str
    n_labs: int
    n_diagnoses: int
    diagnoses_evaluated: dict[str, list[str]]  # label → true drivers
    diagnoses_called_positive: dict[str, int]
    skipped_no_state: list[str]
    skipped_no_lab_driver: list[str]
    methods: list[MethodScore]
    fidelity: Fidelity
    output_variance_explained: list[float]  # top principal components of all standardised output logits


def evaluate_explanations(
    bundle_path: Path,
    store_path: Path,
    ground_truth_path: Path | None = None,
    *,
    split: Split = "test",
    methods: Sequence[MethodName] = METHOD_NAMES,
    max_records: int | None = DEFAULT_MAX_RECORDS,
    seed: int = 0,
) -> ExplanationEvaluation:
    bundle = load_bundle(bundle_path)
    store = Store.open(store_path)
    manifest = bundle.manifest
    validation = fold_outputs(bundle, store, "val", progress_label="running the model on the validation fold")
    held_out = fold_outputs(
        bundle,
        store,
        split,
        max_records=max_records,
        seed=seed,
        progress_label=f"running the model on the {split} fold",
    )
    surrogate = fit_surrogate(
        validation.lab_probability,
        validation.diagnosis_probability,
        manifest.diagnosis_labels,
        manifest.lab_labels,
        seed=seed,
    )
    fidelity = surrogate_fidelity(surrogate, held_out, bundle)

    truth: GroundTruth | None = None
    if ground_truth_path is not None:
        truth = ground_truth_drivers(load_graph(ground_truth_path), manifest.diagnosis_labels, manifest.lab_labels)

    calibrated_diag = apply_temperature(held_out.diagnosis_probability, manifest.temperature_diagnosis)
    thresholds = thresholds_for(manifest.diagnosis_labels, manifest.thresholds_diagnosis)
    called = calibrated_diag >= thresholds[None, :]
    cases = _cases(calibrated_diag, called)

    scores: list[MethodScore] = []
    if truth is not None and truth.drivers:
        outputs = RecordOutputs(
            lab_probability=held_out.lab_probability,
            diagnosis_probability=held_out.diagnosis_probability,
            windows=record_windows(store, held_out.indices, manifest.preprocessing.window_samples)
            if any(m.startswith("gradient") for m in methods)
            else None,
        )
        for name in methods:
            explainer = _explainer(name, bundle, surrogate, store, seed)
            scores.append(
                _score_method(explainer, outputs, truth, cases, manifest.diagnosis_labels, manifest.lab_labels, seed)
            )

    index = {label: k for k, label in enumerate(manifest.diagnosis_labels)}
    return ExplanationEvaluation(
        bundle=str(bundle.path),
        store=str(store.path),
        ground_truth=str(ground_truth_path) if ground_truth_path is not None else None,
        split=split,
        n_records=len(held_out),
        n_validation_records=len(validation),
        calibrated=manifest.temperature_diagnosis is not None and manifest.thresholds_diagnosis is not None,
        selection=(
            f"records called positive by the bundle's thresholds; at least the {MIN_CASES} most probable records"
        ),
        n_labs=len(manifest.lab_labels),
        n_diagnoses=len(manifest.diagnosis_labels),
        diagnoses_evaluated={k: sorted(v) for k, v in (truth.drivers.items() if truth else [])},
        diagnoses_called_positive={
            label: int(called[:, index[label]].sum()) for label in (truth.drivers if truth else {})
        },
        skipped_no_state=truth.skipped_no_state if truth else [],
        skipped_no_lab_driver=truth.skipped_no_lab_driver if truth else [],
        methods=scores,
        fidelity=fidelity,
        output_variance_explained=output_components(held_out),
    )


def _cases(probability: NDArray[np.float32], called: NDArray[np.bool_]) -> list[NDArray[np.int64]]:
    """Per diagnosis: the records it is explained on (called positive, else the most probable)."""
    out = []
    n = probability.shape[0]
    for k in range(probability.shape[1]):
        rows = np.flatnonzero(called[:, k])
        if rows.size < min(MIN_CASES, n):
            rows = np.sort(np.argsort(-probability[:, k], kind="stable")[: min(MIN_CASES, n)])
        out.append(rows.astype(np.int64))
    return out


def _explainer(name: MethodName, bundle: Bundle, surrogate: LabSurrogate, store: Store, seed: int) -> SupportExplainer:
    n_diagnoses = len(bundle.manifest.diagnosis_labels)
    if name == "gradient":
        return GradientAlignment(bundle.model, weight_by_probability=False)
    if name == "gradient_x_probability":
        return GradientAlignment(bundle.model, weight_by_probability=True)
    if name in ("surrogate", "surrogate_centered"):
        return SurrogateExplainer(surrogate, centered=name == "surrogate_centered")
    if name == "probability":
        return ProbabilityBaseline(n_diagnoses)
    if name == "random":
        return RandomBaseline(n_diagnoses, seed=seed)
    if name in ("cooccurrence", "association"):
        train = store.split_indices("train")
        diag_cols = label_columns(bundle.manifest.diagnosis_labels, store.manifest.diagnosis_labels, "diagnosis", store)
        lab_cols = label_columns(bundle.manifest.lab_labels, store.manifest.lab_labels, "lab", store)
        diagnosis_targets = store.diagnosis_targets()[train][:, diag_cols]
        lab_targets = store.lab_targets()[train][:, lab_cols]
        if name == "cooccurrence":
            return CooccurrenceBaseline.fit(diagnosis_targets, lab_targets)
        return AssociationExplainer(
            fit_association(
                diagnosis_targets, lab_targets, bundle.manifest.diagnosis_labels, bundle.manifest.lab_labels
            )
        )
    raise ValueError(f"unknown explanation method {name!r}")


def _score_method(
    explainer: SupportExplainer,
    outputs: RecordOutputs,
    truth: GroundTruth,
    cases: list[NDArray[np.int64]],
    diagnosis_labels: Sequence[str],
    lab_labels: Sequence[str],
    seed: int,
) -> MethodScore:
    _warm_up(explainer, outputs)
    start = time.perf_counter()
    all_scores = explainer.scores(outputs)  # (N, K, P)
    elapsed = time.perf_counter() - start
    if all_scores.shape[:2] != (outputs.n_records, len(diagnosis_labels)):
        raise ExplanationError(f"{explainer.name}: scores of shape {all_scores.shape}")
    rng = np.random.default_rng(seed)
    lab_names = np.asarray(lab_labels)
    per_diagnosis: dict[str, dict[str, float]] = {}
    n_cases = 0
    for k, label in enumerate(diagnosis_labels):
        if label not in truth.drivers:
            continue
        rows = cases[k]
        if rows.size == 0:
            continue
        relevant = np.isin(lab_names, sorted(truth.drivers[label]))
        per_diagnosis[label] = ranking_metrics(all_scores[rows, k, :], relevant, rng)
        n_cases += int(rows.size)
    precision = {str(k): _mean([m[f"p@{k}"] for m in per_diagnosis.values()]) for k in K_VALUES}
    return MethodScore(
        method=explainer.name,
        baseline=explainer.name in BASELINE_METHODS,
        precision_at=precision,
        mean_average_precision=_mean([m["map"] for m in per_diagnosis.values()]),
        n_diagnoses=len(per_diagnosis),
        n_cases=n_cases,
        ms_per_record=1000.0 * elapsed / max(outputs.n_records, 1),
        per_diagnosis=per_diagnosis,
    )


def _warm_up(explainer: SupportExplainer, outputs: RecordOutputs) -> None:
    """One record through the method first, so one-off set-up (torch.func tracing) is not timed."""
    if outputs.n_records:
        explainer.scores(
            RecordOutputs(
                lab_probability=outputs.lab_probability[:1],
                diagnosis_probability=outputs.diagnosis_probability[:1],
                windows=None if outputs.windows is None else outputs.windows[:1],
            )
        )


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def output_components(fold: FoldOutputs, n_components: int = 5) -> list[float]:
    """Share of the variance of all K + P standardised output logits carried by each top component.

    A model whose outputs live in very few directions cannot tell one lab driver from another by
    anything it computes from h_x: this number says how much room the embedding-internal methods had.
    """
    if len(fold) < 3:
        return []
    outputs = np.concatenate([logit(fold.diagnosis_probability), logit(fold.lab_probability)], axis=1)
    spread = outputs.std(axis=0)
    standardised = (outputs - outputs.mean(axis=0))[:, spread > 1e-9] / spread[spread > 1e-9]
    singular = np.linalg.svd(standardised, compute_uv=False)
    shares = singular**2 / float((singular**2).sum())
    return [float(v) for v in shares[:n_components]]


def surrogate_fidelity(surrogate: LabSurrogate, held_out: FoldOutputs, bundle: Bundle) -> Fidelity:
    """R² of the surrogate's logits against the model's on held-out records, and call AUROC."""
    model_logits = logit(held_out.diagnosis_probability)
    predicted = surrogate.predict_logits(held_out.lab_probability).astype(np.float64)
    labels = bundle.manifest.diagnosis_labels
    r2: dict[str, float | None] = {}
    for k, label in enumerate(labels):
        total = float(((model_logits[:, k] - model_logits[:, k].mean()) ** 2).sum())
        if held_out.indices.size < 2 or total < 1e-12:
            r2[label] = None
            continue
        r2[label] = float(1.0 - ((model_logits[:, k] - predicted[:, k]) ** 2).sum() / total)
    thresholds = thresholds_for(labels, bundle.manifest.thresholds_diagnosis)
    calls = (
        apply_temperature(held_out.diagnosis_probability, bundle.manifest.temperature_diagnosis) >= thresholds
    ).astype(np.float32)
    call_auroc = masked_auroc_per_label(calls, predicted) if held_out.indices.size else np.array([])
    values = [v for v in r2.values() if v is not None]
    cv = [v for v in surrogate.cv_r2 if v is not None]
    finite_auroc = call_auroc[np.isfinite(call_auroc)] if call_auroc.size else call_auroc
    return Fidelity(
        n_diagnoses=len(values),
        r2_mean=float(np.mean(values)) if values else None,
        r2_median=float(np.median(values)) if values else None,
        cv_r2_median_validation=float(np.median(cv)) if cv else None,
        call_auroc_mean=float(finite_auroc.mean()) if finite_auroc.size else None,
        mean_labs_used=float((np.abs(surrogate.coefficient_matrix()) > 0).sum(axis=1).mean()),
        per_diagnosis_r2=r2,
    )
