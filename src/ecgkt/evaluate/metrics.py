"""Masked multi-label metrics: AUROC per label, macro AUROC, its bootstrap CI, and the masked BCE loss.

Targets are float arrays with NaN = unknown (a lab never measured): unknown entries are left out of
every metric and loss, never counted as negatives. A label whose known entries lack one of the two
classes has no AUROC; it is NaN per label and skipped by the macro average (design.md §4).

AUROC is computed from sorted scores with ties counted half (the Mann-Whitney statistic, identical to
scikit-learn's `roc_auc_score`). The same routine accepts per-record weights, which is how the
bootstrap works: resampling records with replacement is the same as weighting each record by how many
times it was drawn, so every label is sorted once and each of the 1000 resamples costs a few
cumulative sums instead of a sort.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from ecgkt.errors import UserError

FloatArray = NDArray[np.float64]

_BOOTSTRAP_CHUNK_ELEMENTS = 2_000_000  # resamples × records held in memory at once


class MetricInputError(UserError, ValueError):
    """Targets or scores that cannot be scored: wrong shapes, targets not in {0, 1, NaN}, NaN scores."""


def check_targets_and_scores(y_true: ArrayLike, y_score: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and return both as float64 (N, K) arrays (a 1-D input is one label)."""
    targets = np.asarray(y_true, dtype=np.float64)
    scores = np.asarray(y_score, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets[:, None]
    if scores.ndim == 1:
        scores = scores[:, None]
    if targets.ndim != 2 or targets.shape != scores.shape:
        raise MetricInputError(
            f"y_true and y_score must have the same (records, labels) shape, got {np.shape(y_true)} "
            f"and {np.shape(y_score)}"
        )
    known = targets[~np.isnan(targets)]
    if np.any((known != 0.0) & (known != 1.0)):
        raise MetricInputError("y_true may only contain 0, 1 or NaN (unknown)")
    if not np.all(np.isfinite(scores)):
        raise MetricInputError("y_score contains NaN or infinite values")
    return targets, scores


class _SortedLabel:
    """One label's known entries sorted by score, prepared for weighted AUROC.

    For a positive at sorted position i inside the tie group [a, b), its wins are the negative weight
    strictly below the group plus half the negative weight inside it, i.e. ½·(N(<a) + N(<b)) with
    N(<j) the cumulative negative weight before position j. Precomputing a and b for every positive
    turns the whole statistic into one cumulative sum and two gathers per resample.
    """

    def __init__(self, labels: FloatArray, scores: FloatArray, record_index: NDArray[np.intp]) -> None:
        order = np.argsort(scores, kind="stable")
        sorted_scores = scores[order]
        self.record_index = record_index[order]
        self.positive = labels[order] == 1.0
        group_starts = np.flatnonzero(np.r_[True, np.diff(sorted_scores) != 0.0])
        group_ends = np.r_[group_starts[1:], sorted_scores.size]
        group_of_position = np.cumsum(np.r_[False, np.diff(sorted_scores) != 0.0])
        positive_positions = np.flatnonzero(self.positive)
        self.positive_records = self.record_index[positive_positions]
        self.group_start_of_positive = group_starts[group_of_position[positive_positions]]
        self.group_end_of_positive = group_ends[group_of_position[positive_positions]]

    def auroc(self, weights: FloatArray) -> FloatArray:
        """AUROC for each row of `weights` (R, N_all); NaN where a row leaves one class weightless."""
        negative_weights = np.where(self.positive, 0.0, weights[:, self.record_index])
        negatives_before = np.zeros((weights.shape[0], negative_weights.shape[1] + 1))
        np.cumsum(negative_weights, axis=1, out=negatives_before[:, 1:])
        positive_weights = weights[:, self.positive_records]
        below_group = negatives_before[:, self.group_start_of_positive]
        through_group = negatives_before[:, self.group_end_of_positive]
        wins = 0.5 * np.sum(positive_weights * (below_group + through_group), axis=1)
        pairs = positive_weights.sum(axis=1) * negatives_before[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def _sorted_labels(targets: FloatArray, scores: FloatArray) -> list[_SortedLabel | None]:
    """Per label: its sorted known entries, or None when they lack a class (AUROC undefined)."""
    prepared: list[_SortedLabel | None] = []
    for k in range(targets.shape[1]):
        known = np.flatnonzero(~np.isnan(targets[:, k]))
        labels = targets[known, k]
        if labels.size == 0 or labels.min() == labels.max():
            prepared.append(None)
        else:
            prepared.append(_SortedLabel(labels, scores[known, k], known))
    return prepared


def _nanmean_rows(values: FloatArray) -> FloatArray:
    """Mean over the last axis ignoring NaN; NaN (no warning) where a row is all NaN."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=-1)
    totals = np.where(valid, values, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def masked_auroc_per_label(y_true: ArrayLike, y_score: ArrayLike) -> FloatArray:
    """(K,) AUROC per label over its known entries; NaN where a label lacks positives or negatives."""
    targets, scores = check_targets_and_scores(y_true, y_score)
    unit = np.ones((1, targets.shape[0]))
    return np.array(
        [
            np.nan if label is None else float(label.auroc(unit)[0])
            for label in _sorted_labels(targets, scores)
        ],
        dtype=np.float64,
    )


def masked_macro_auroc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean AUROC over the labels that have both classes; NaN if none does."""
    return float(_nanmean_rows(masked_auroc_per_label(y_true, y_score)))


def _bootstrap_counts(rng: np.random.Generator, n_resamples: int, n_records: int) -> FloatArray:
    """(R, N) how often each record is drawn in each resample of N records with replacement."""
    draws = rng.integers(0, n_records, size=(n_resamples, n_records))
    offsets = (np.arange(n_resamples) * n_records)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n_records)
    return counts.reshape(n_resamples, n_records).astype(np.float64)


def bootstrap_macro_auroc_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(point, low, high): macro AUROC and its percentile bootstrap CI, resampling test records.

    Each resample draws N records with replacement and recomputes the masked macro AUROC (labels
    lacking a class in that resample are skipped, as in the point estimate). Resamples where no
    label is scorable are dropped. Deterministic given `seed`.
    """
    if n_resamples < 1:
        raise MetricInputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise MetricInputError(f"confidence must be in (0, 1), got {confidence}")
    targets, scores = check_targets_and_scores(y_true, y_score)
    labels = [label for label in _sorted_labels(targets, scores) if label is not None]
    n_records = targets.shape[0]
    unit = np.ones((1, n_records))
    point = float(_nanmean_rows(np.array([label.auroc(unit)[0] for label in labels]))) if labels else np.nan
    if not labels:
        return point, np.nan, np.nan
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n_records)
    macros: list[FloatArray] = []
    for start in range(0, n_resamples, chunk):
        weights = _bootstrap_counts(rng, min(chunk, n_resamples - start), n_records)
        per_label = np.stack([label.auroc(weights) for label in labels], axis=1)  # (r, K)
        macros.append(_nanmean_rows(per_label))
    resampled = np.concatenate(macros)
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0:
        return point, np.nan, np.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return point, float(low), float(high)


def masked_bce_with_logits(logits: Tensor, targets: Tensor, focal_gamma: float = 0.0) -> Tensor:
    """Binary cross-entropy averaged over the KNOWN entries of `targets` (NaN = unknown).

    Unknown entries contribute neither loss nor gradient. With `focal_gamma` > 0 each term is scaled by
    (1 − p_t)^γ (focal loss, Lin et al. 2017), down-weighting easy, confident entries. A batch with no
    known entry returns a zero that is still attached to the graph, so training steps never break.
    """
    if logits.shape != targets.shape:
        raise MetricInputError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    if focal_gamma < 0:
        raise MetricInputError(f"focal_gamma must be >= 0, got {focal_gamma}")
    logits = logits.float()
    known = ~torch.isnan(targets)
    filled = torch.where(known, targets.float(), torch.zeros_like(logits))
    per_entry = F.binary_cross_entropy_with_logits(logits, filled, reduction="none")
    if focal_gamma > 0:
        p = torch.sigmoid(logits)
        p_true_class = p * filled + (1.0 - p) * (1.0 - filled)
        per_entry = per_entry * (1.0 - p_true_class).pow(focal_gamma)
    per_entry = torch.where(known, per_entry, torch.zeros_like(per_entry))
    return per_entry.sum() / known.sum().clamp(min=1)
