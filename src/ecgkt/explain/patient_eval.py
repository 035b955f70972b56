"""Scoring explanation methods against per-diagnosis AND per-patient ground truth, with bootstrap CIs.

Protocol (docs/explanations.md, "Per-patient evaluation"):
- fitted parts from the training fold's labels and the validation fold's model outputs
  (explain/patient_fit.py); scored on the held-out fold (`split`, test by default; the bundle's
  default method is chosen the same way on the validation fold);
- cases: a diagnosis is explained where the engine explains it, on the records the bundle calls
  positive (at least the `MIN_CASES` most probable); against the per-patient truth only the cases
  where the diagnosis has at least one true driver *in that ECG* (its state is present and switching
  it off removes at least one of the bundle's lab abnormalities);
- metrics: precision@1/3/5 and average precision per case (ties broken at random), averaged per
  diagnosis, then macro-averaged over diagnoses; 95 % CIs by a cluster bootstrap over patients
  (all ECGs of a resampled patient move together), paired for differences to co-occurrence;
- faithfulness (model-level): for each case, remove from the embedding the span of the lab
  directions of a method's top-k labs and measure the drop of the diagnosis probability; the same
  with k random labs; a faithful method's deletion lowers the probability more;
- completeness (concept methods): Σ Shapley / (model logit − cohort baseline logit) per case;
- stability: refit on seeded 80 % subsamples of the fitting folds; MAP per seed and the overlap
  (Jaccard) of each case's top-3 with the first seed's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ecgkt.bundle import Bundle, load_bundle
from ecgkt.evaluate.calibration import apply_temperature, thresholds_for
from ecgkt.explain.association import AssociationExplainer, fit_association
from ecgkt.explain.ground_truth import GroundTruth, ground_truth_drivers, load_graph
from ecgkt.explain.patient import (
    AssociationLift,
    ConceptShapley,
    DirectXProbability,
    EmbeddingCounterfactual,
    PatientExplanation,
    encode_windows,
)
from ecgkt.explain.patient_fit import FittingData, fit_patient_explanation, fitting_data, raw_logits
from ecgkt.explain.patient_truth import PatientTruth, load_patient_drivers, patient_truth
from ecgkt.explain.population import DirectBaseline
from ecgkt.explain.store_outputs import FoldOutputs, fold_outputs, record_windows
from ecgkt.explain.supporting_labs import (
    CooccurrenceBaseline,
    GradientAlignment,
    ProbabilityBaseline,
    RandomBaseline,
    RecordOutputs,
)
from ecgkt.store import Split, Store

__all__ = [
    "ALL_METHODS",
    "PATIENT_SPECIFIC",
    "HeldOut",
    "case_metrics",
    "cluster_bootstrap",
    "evaluate_patient_explanations",
    "held_out",
    "method_scores",
]

ALL_METHODS: tuple[str, ...] = (
    "cooccurrence",
    "direct",
    "association",
    "association_lift",
    "direct_x_probability",
    "concept_shapley",
    "concept_shapley_direct",
    "embedding_counterfactual",
    "gradient_x_probability",
    "probability",
    "random",
    "oracle_measured_labs",
)
PATIENT_SPECIFIC = frozenset(
    {"association", "association_lift", "direct_x_probability", "oracle_measured_labs", "concept_shapley",
     "concept_shapley_direct", "embedding_counterfactual", "gradient_x_probability", "probability"}
)
ORACLES = frozenset({"oracle_measured_labs"})  # ceilings, not deployable: they read the measured labs
FITTED = (
    "association_lift", "direct", "direct_x_probability", "concept_shapley", "concept_shapley_direct",
    "embedding_counterfactual",
)
REFERENCE = "cooccurrence"
MIN_CASES = 10
K_VALUES = (1, 3, 5)
DELETION_K = (1, 3)
MAX_FIT_RECORDS = 4000  # validation ECGs used for fitting (~200 MB of windows at 4 windows per ECG)


@dataclass(frozen=True)
class HeldOut:
    fold: FoldOutputs
    windows: NDArray[np.float32]
    embeddings: NDArray[np.float32]
    study_ids: NDArray[np.int64]
    subject_ids: NDArray[np.int64]

    @property
    def outputs(self) -> RecordOutputs:
        return RecordOutputs(
            lab_probability=self.fold.lab_probability,
            diagnosis_probability=self.fold.diagnosis_probability,
            windows=self.windows,
        )


def held_out(bundle: Bundle, store: Store, fold: FoldOutputs) -> HeldOut:
    windows = record_windows(store, fold.indices, bundle.manifest.preprocessing.window_samples)
    records = store.records
    return HeldOut(
        fold=fold,
        windows=windows,
        embeddings=encode_windows(bundle.model, windows),
        study_ids=records["study_id"].to_numpy()[fold.indices].astype(np.int64),
        subject_ids=records["subject_id"].to_numpy()[fold.indices].astype(np.int64),
    )


def method_scores(
    names: Sequence[str], bundle: Bundle, fitted: PatientExplanation, data: FittingData, held: HeldOut, seed: int
) -> dict[str, NDArray[np.float32]]:
    """(N, K, P) scores of every method on the held-out records."""
    n_diag = len(bundle.manifest.diagnosis_labels)
    outputs = held.outputs
    out: dict[str, NDArray[np.float32]] = {}
    for name in names:
        if name == "cooccurrence":
            out[name] = CooccurrenceBaseline.fit(data.train_diagnosis_targets, data.train_lab_targets).scores(outputs)
        elif name == "association":
            assoc = fit_association(
                data.train_diagnosis_targets, data.train_lab_targets,
                bundle.manifest.diagnosis_labels, bundle.manifest.lab_labels,
            )
            out[name] = AssociationExplainer(assoc).scores(outputs)
        elif name == "association_lift":
            out[name] = AssociationLift(fitted).scores(outputs)
        elif name == "oracle_measured_labs":
            # Ceiling: phi, zeroed for the labs MEASURED normal for this ECG (store label; unmeasured labs
            # keep phi). What a perfect lab predictor could add to the population ranking. (Weighting by the
            # measured label with unmeasured labs at the cohort rate does worse: 40 % of true drivers are
            # unmeasured and would be demoted.)
            measured = held.fold.lab_targets
            keep = np.where(np.isfinite(measured) & (measured < 0.5), 0.0, 1.0).astype(np.float32)
            out[name] = (fitted.matrix("phi")[None, :, :] * keep[:, None, :]).astype(np.float32)
        elif name == "direct":
            out[name] = DirectBaseline(fitted.matrix("direct")).scores(outputs)
        elif name == "direct_x_probability":
            out[name] = DirectXProbability(fitted.matrix("direct")).scores(outputs)
        elif name in ("concept_shapley", "concept_shapley_direct"):
            out[name] = ConceptShapley(fitted, restricted=name.endswith("direct")).scores(outputs)
        elif name == "embedding_counterfactual":
            out[name] = EmbeddingCounterfactual(bundle.model, fitted).scores_from_embeddings(held.embeddings)
        elif name == "gradient_x_probability":
            out[name] = GradientAlignment(bundle.model, weight_by_probability=True).scores(outputs)
        elif name == "probability":
            out[name] = ProbabilityBaseline(n_diag).scores(outputs)
        elif name == "random":
            out[name] = RandomBaseline(n_diag, seed=seed).scores(outputs)
        else:
            raise ValueError(f"unknown explanation method {name!r}")
    return out


# ---- cases and per-case metrics ---------------------------------------------------------------


def called_cases(bundle: Bundle, fold: FoldOutputs) -> list[NDArray[np.int64]]:
    """Per diagnosis: records called positive (calibrated ≥ threshold), else the MIN_CASES most probable."""
    manifest = bundle.manifest
    probability = apply_temperature(fold.diagnosis_probability, manifest.temperature_diagnosis)
    called = probability >= thresholds_for(manifest.diagnosis_labels, manifest.thresholds_diagnosis)[None, :]
    n = probability.shape[0]
    out = []
    for k in range(probability.shape[1]):
        rows = np.flatnonzero(called[:, k])
        if rows.size < min(MIN_CASES, n):
            rows = np.sort(np.argsort(-probability[:, k], kind="stable")[: min(MIN_CASES, n)])
        out.append(rows.astype(np.int64))
    return out


@dataclass
class CaseMetrics:
    """One row per (record, diagnosis) case."""

    diagnosis: NDArray[np.int64]
    record: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]] = field(default_factory=dict)  # "p@1", "p@3", "p@5", "ap"
    top: NDArray[np.int64] | None = None  # (C, 5) best labs


def case_metrics(
    scores: NDArray[np.floating],
    cases: dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]],
    rng: np.random.Generator,
) -> CaseMetrics:
    """cases[k] = (record rows, relevance (rows, P)); ranking with random tie-breaking."""
    diag, rec, top = [], [], []
    vals: dict[str, list[NDArray[np.float64]]] = {key: [] for key in (*(f"p@{k}" for k in K_VALUES), "ap")}
    for k, (rows, relevant) in cases.items():
        if rows.size == 0:
            continue
        values = np.asarray(scores[rows, k, :], dtype=np.float64)
        ranked = np.lexsort((rng.random(values.shape), -values), axis=-1)
        hits = np.take_along_axis(relevant, ranked, axis=1).astype(np.float64)
        for kk in K_VALUES:
            vals[f"p@{kk}"].append(hits[:, :kk].mean(axis=1))
        n_rel = hits.sum(axis=1)
        prec = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals["ap"].append(np.where(n_rel > 0, (prec * hits).sum(axis=1) / n_rel, np.nan))
        diag.append(np.full(rows.size, k, dtype=np.int64))
        rec.append(rows)
        top.append(ranked[:, :5])
    if not diag:
        empty = np.zeros(0, dtype=np.int64)
        return CaseMetrics(empty, empty, {key: np.zeros(0) for key in vals}, np.zeros((0, 5), dtype=np.int64))
    return CaseMetrics(
        diagnosis=np.concatenate(diag),
        record=np.concatenate(rec),
        values={key: np.concatenate(v) for key, v in vals.items()},
        top=np.concatenate(top).astype(np.int64),
    )


def macro(values: NDArray[np.float64], diagnosis: NDArray[np.int64], weights: NDArray[np.float64] | None = None
          ) -> NDArray[np.float64]:
    """Macro average over diagnoses of the per-diagnosis (weighted) mean; weights (B, C) give (B,)."""
    labels, inverse = np.unique(diagnosis, return_inverse=True)
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    w = np.ones((1, values.size)) if weights is None else weights
    w = w * finite[None, :]
    onehot = np.zeros((values.size, labels.size))
    onehot[np.arange(values.size), inverse] = 1.0
    sums = (w * v[None, :]) @ onehot
    counts = w @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        per = sums / counts
    result = np.nanmean(np.where(counts > 0, per, np.nan), axis=1)
    return result if weights is not None else result[:1]


def cluster_bootstrap(subjects: NDArray[np.int64], n_resamples: int, seed: int) -> NDArray[np.float64]:
    """(B, N) record weights: patients resampled with replacement, each record weighted by its patient's count."""
    unique, inverse = np.unique(subjects, return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(unique.size, np.full(unique.size, 1.0 / unique.size), size=n_resamples)
    return counts[:, inverse].astype(np.float64)


def _ci(samples: NDArray[np.float64]) -> list[float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [math.nan, math.nan]
    return [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]


def summarise(metrics: CaseMetrics, weights: NDArray[np.float64], reference: CaseMetrics | None) -> dict[str, Any]:
    """Point estimates, bootstrap CIs and (when given) paired differences to the reference method."""
    out: dict[str, Any] = {"n_cases": int(metrics.record.size), "n_diagnoses": int(np.unique(metrics.diagnosis).size)}
    case_w = weights[:, metrics.record] if metrics.record.size else np.zeros((weights.shape[0], 0))
    for key in ("p@1", "p@3", "p@5", "ap"):
        name = "map" if key == "ap" else key
        values = metrics.values[key]
        if values.size == 0:
            out[name] = {"value": math.nan, "ci": [math.nan, math.nan]}
            continue
        point = float(macro(values, metrics.diagnosis)[0])
        boot = macro(values, metrics.diagnosis, case_w)
        entry: dict[str, Any] = {"value": point, "ci": _ci(boot)}
        if reference is not None and reference.record.size == metrics.record.size:
            ref_boot = macro(reference.values[key], reference.diagnosis, case_w)
            entry["minus_reference"] = point - float(macro(reference.values[key], reference.diagnosis)[0])
            entry["minus_reference_ci"] = _ci(boot - ref_boot)
        out[name] = entry
    return out


# ---- faithfulness ---------------------------------------------------------------------------


def deletion_drop(
    bundle: Bundle,
    fitted: PatientExplanation,
    embeddings: NDArray[np.float32],
    metrics: CaseMetrics,
    k_delete: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(C,) drop of the diagnosis probability when the top-k labs' directions are removed; same for k random labs."""
    assert fitted.lab_directions is not None and fitted.embedding_mean is not None and metrics.top is not None
    directions = np.asarray(fitted.lab_directions, dtype=np.float64)
    h_mean = np.asarray(fitted.embedding_mean, dtype=np.float64)
    n_labs = directions.shape[0]
    head = bundle.model.diagnosis_head
    head.eval()
    top_drop = np.zeros(metrics.record.size)
    random_drop = np.zeros(metrics.record.size)
    random_sets = np.argsort(rng.random((metrics.record.size, n_labs)), axis=1)[:, :k_delete]

    def probs(h: NDArray[np.float64]) -> NDArray[np.float64]:
        with torch.no_grad():
            logits = head(torch.from_numpy(h.astype(np.float32))).numpy().astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    for record in np.unique(metrics.record):
        cases = np.flatnonzero(metrics.record == record)
        h = embeddings[record].astype(np.float64)  # (W, d)
        base = probs(h).mean(axis=0)  # (K,)
        for which, lab_sets in ((top_drop, metrics.top[cases, :k_delete]), (random_drop, random_sets[cases])):
            removed = []
            for labs in lab_sets:
                q, _ = np.linalg.qr(directions[labs].T)  # (d, k) orthonormal
                removed.append(h - ((h - h_mean) @ q) @ q.T)
            after = probs(np.concatenate(removed)).reshape(len(cases), h.shape[0], -1).mean(axis=1)
            ks = metrics.diagnosis[cases]
            which[cases] = base[ks] - after[np.arange(len(cases)), ks]
    return top_drop, random_drop


# ---- the whole evaluation -------------------------------------------------------------------


@dataclass
class Context:
    bundle: Bundle
    store: Store
    data: FittingData
    held: HeldOut
    fitted: PatientExplanation
    per_diagnosis: GroundTruth | None
    per_patient: PatientTruth | None


def prepare(
    bundle_path: Path, store_path: Path, ground_truth_path: Path | None, *, split: Split, max_records: int | None,
    seed: int, progress: Callable[[str], None] | None = None,
) -> Context:
    say = progress or (lambda _message: None)
    bundle = load_bundle(bundle_path)
    store = Store.open(store_path)
    say("running the model on the validation fold")
    # Bounded: the fitting keeps every validation window and its embedding in memory.
    validation = fold_outputs(bundle, store, "val", max_records=MAX_FIT_RECORDS, seed=seed)
    data = fitting_data(bundle, store, validation)
    say("fitting the explanations")
    fitted = fit_patient_explanation(bundle, data, seed=seed)
    if split == "val":
        fold = validation
    else:
        say(f"running the model on the {split} fold")
        limit = MAX_FIT_RECORDS if max_records is None else min(max_records, MAX_FIT_RECORDS)
        fold = fold_outputs(bundle, store, split, max_records=limit, seed=seed)
    held = held_out(bundle, store, fold)
    per_diagnosis = per_patient = None
    if ground_truth_path is not None:
        graph = load_graph(ground_truth_path)
        labels = bundle.manifest.diagnosis_labels
        per_diagnosis = ground_truth_drivers(graph, labels, bundle.manifest.lab_labels)
        folder = ground_truth_path if ground_truth_path.is_dir() else ground_truth_path.parent
        per_patient = patient_truth(
            load_patient_drivers(folder), held.study_ids, graph, labels, bundle.manifest.lab_labels
        )
    return Context(bundle, store, data, held, fitted, per_diagnosis, per_patient)


def truth_cases(ctx: Context) -> tuple[dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]],
                                       dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]]]:
    """(per-diagnosis cases, per-patient cases): k → (rows, relevance (rows, P))."""
    called = called_cases(ctx.bundle, ctx.held.fold)
    labs = np.asarray(ctx.bundle.manifest.lab_labels)
    diag_cases: dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]] = {}
    patient_cases: dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]] = {}
    for k, label in enumerate(ctx.bundle.manifest.diagnosis_labels):
        rows = called[k]
        if ctx.per_diagnosis is not None and label in ctx.per_diagnosis.drivers and rows.size:
            mask = np.isin(labs, sorted(ctx.per_diagnosis.drivers[label]))
            diag_cases[k] = (rows, np.broadcast_to(mask, (rows.size, labs.size)).copy())
        if ctx.per_patient is not None and k in ctx.per_patient.relevant:
            relevant = ctx.per_patient.relevant[k]
            keep = rows[relevant[rows].any(axis=1)]
            if keep.size:
                patient_cases[k] = (keep, relevant[keep])
    return diag_cases, patient_cases


def effective_rank(fold: FoldOutputs) -> dict[str, Any]:
    """Spectrum of the standardised K + P output logits: shares of the top components, participation ratio."""
    outputs = np.concatenate([raw_logits(fold.diagnosis_probability), raw_logits(fold.lab_probability)], axis=1)
    spread = outputs.std(axis=0)
    keep = spread > 1e-9
    standardised = (outputs - outputs.mean(axis=0))[:, keep] / spread[keep]
    eigen = np.linalg.svd(standardised, compute_uv=False) ** 2
    shares = eigen / eigen.sum()
    entropy = -float((shares[shares > 0] * np.log(shares[shares > 0])).sum())
    return {
        "top_component_shares": [float(v) for v in shares[:8]],
        "participation_ratio": float(eigen.sum() ** 2 / (eigen**2).sum()),
        "entropy_effective_rank": float(np.exp(entropy)),
        "components_for_90_percent": int(np.searchsorted(np.cumsum(shares), 0.9) + 1),
        "n_outputs": int(keep.sum()),
    }


def evaluate_patient_explanations(
    bundle_path: Path,
    store_path: Path,
    ground_truth_path: Path | None,
    *,
    split: Split = "test",
    methods: Sequence[str] = ALL_METHODS,
    max_records: int | None = 2000,
    seed: int = 0,
    n_resamples: int = 1000,
    stability_seeds: Sequence[int] = (0, 1, 2),
    progress: Callable[[str], None] | None = None,
    context: Context | None = None,
    diagnostics: bool = True,
) -> dict[str, Any]:
    """Every method against both ground truths; with `diagnostics`, also faithfulness, completeness, stability."""
    say = progress or (lambda _message: None)
    ctx = context or prepare(bundle_path, store_path, ground_truth_path, split=split, max_records=max_records,
                             seed=seed, progress=say)
    say("scoring the methods")
    scores = method_scores(methods, ctx.bundle, ctx.fitted, ctx.data, ctx.held, seed)
    diag_cases, patient_cases = truth_cases(ctx)
    weights = cluster_bootstrap(ctx.held.subject_ids, n_resamples, seed)
    result: dict[str, Any] = {
        "split": ctx.held.fold.split,
        "n_records": len(ctx.held.fold),
        "n_patients": int(np.unique(ctx.held.subject_ids).size),
        "n_validation_records": len(ctx.data.validation),
        "n_resamples": n_resamples,
        "effective_rank": effective_rank(ctx.held.fold),
        "methods": {},
    }
    per_truth: dict[str, dict[str, CaseMetrics]] = {"per_diagnosis": {}, "per_patient": {}}
    for truth_name, cases in (("per_diagnosis", diag_cases), ("per_patient", patient_cases)):
        for name in methods:
            per_truth[truth_name][name] = case_metrics(scores[name], cases, np.random.default_rng(seed))
    for name in methods:
        entry: dict[str, Any] = {"patient_specific": name in PATIENT_SPECIFIC, "oracle": name in ORACLES}
        for truth_name in per_truth:
            reference = per_truth[truth_name].get(REFERENCE)
            entry[truth_name] = summarise(
                per_truth[truth_name][name], weights, reference if name != REFERENCE else None
            )
        result["methods"][name] = entry
    if patient_cases and diagnostics:
        say("faithfulness: deleting top-k lab directions from the embedding")
        result["faithfulness"] = faithfulness(ctx, per_truth["per_patient"], weights, seed)
        result["completeness"] = completeness(ctx, per_truth["per_patient"], weights)
        if stability_seeds:
            say("stability across seeds")
            result["stability"] = stability(ctx, patient_cases, stability_seeds, seed)
    return result


def faithfulness(ctx: Context, metrics: dict[str, CaseMetrics], weights: NDArray[np.float64], seed: int
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, m in metrics.items():
        if name == "random" or m.record.size == 0:
            continue
        entry: dict[str, Any] = {}
        for k_delete in DELETION_K:
            top, rand = deletion_drop(ctx.bundle, ctx.fitted, ctx.held.embeddings, m, k_delete,
                                      np.random.default_rng(seed + k_delete))
            case_w = weights[:, m.record]
            boot_top = macro(top, m.diagnosis, case_w)
            boot_rand = macro(rand, m.diagnosis, case_w)
            point_top = float(macro(top, m.diagnosis)[0])
            point_rand = float(macro(rand, m.diagnosis)[0])
            entry[str(k_delete)] = {
                "drop_top": point_top, "drop_random": point_rand,
                "difference": point_top - point_rand, "difference_ci": _ci(boot_top - boot_rand),
                "share_cases_top_beats_random": float(np.mean(top > rand)),
            }
        out[name] = entry
    return out


def completeness(ctx: Context, metrics: dict[str, CaseMetrics], weights: NDArray[np.float64]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    outputs = ctx.held.outputs
    model_logits = raw_logits(ctx.held.fold.diagnosis_probability)
    for name in ("concept_shapley", "concept_shapley_direct"):
        m = metrics.get(name)
        if m is None or m.record.size == 0:
            continue
        explainer = ConceptShapley(ctx.fitted, restricted=name.endswith("direct"))
        share = explainer.completeness(outputs)[m.record, m.diagnosis]
        predicted = _logit_of_readout(explainer, outputs)
        r2 = []
        for k in range(model_logits.shape[1]):
            total = float(((model_logits[:, k] - model_logits[:, k].mean()) ** 2).sum())
            if total > 1e-12:
                r2.append(1.0 - float(((model_logits[:, k] - predicted[:, k]) ** 2).sum()) / total)
        finite = share[np.isfinite(share)]
        out[name] = {
            "median_share_of_logit": float(np.median(finite)) if finite.size else math.nan,
            "mean_share_clipped_0_1": float(macro(np.clip(share, 0, 1), m.diagnosis)[0]) if finite.size else math.nan,
            "share_ci": _ci(macro(np.clip(share, 0, 1), m.diagnosis, weights[:, m.record])),
            "held_out_r2_median": float(np.median(r2)) if r2 else math.nan,
        }
    return out


def _logit_of_readout(explainer: ConceptShapley, outputs: RecordOutputs) -> NDArray[np.float64]:
    z = raw_logits(outputs.lab_probability)
    return z @ explainer.weights.astype(np.float64).T + explainer.intercepts[None, :]


def stability(ctx: Context, patient_cases: dict[int, tuple[NDArray[np.int64], NDArray[np.bool_]]],
              seeds: Sequence[int], seed: int) -> dict[str, Any]:
    per_seed: dict[str, list[float]] = {name: [] for name in FITTED}
    tops: dict[str, list[NDArray[np.int64]]] = {name: [] for name in FITTED}
    for s in seeds:
        fitted = fit_patient_explanation(ctx.bundle, ctx.data, seed=s, subsample=0.8)
        scores = method_scores(FITTED, ctx.bundle, fitted, ctx.data, ctx.held, s)
        for name in FITTED:
            m = case_metrics(scores[name], patient_cases, np.random.default_rng(seed))
            per_seed[name].append(float(macro(m.values["ap"], m.diagnosis)[0]))
            assert m.top is not None
            tops[name].append(m.top[:, :3])
    out: dict[str, Any] = {"seeds": list(seeds), "subsample": 0.8}
    for name in FITTED:
        first = tops[name][0]
        jaccard = [
            float(np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(first, other, strict=True)]))
            for other in tops[name][1:]
        ]
        out[name] = {"map_per_seed": per_seed[name], "map_sd": float(np.std(per_seed[name])),
                     "top3_jaccard_vs_first_seed": float(np.mean(jaccard)) if jaccard else math.nan}
    return out
