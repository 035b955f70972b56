"""Calibration for the prediction report: ECE, temperature scaling and per-label decision thresholds.

A report shows probabilities and "positive / negative" calls, so both must mean something:
- `fit_temperature` rescales a head's logits by one scalar T (fitted on the validation fold) so that
  sigmoid(logit / T) is calibrated; one scalar cannot change the ranking, hence AUROC is untouched.
- `choose_thresholds` picks, per label, the probability above which the report calls it present.
- `expected_calibration_error` measures the result.
All three take targets with NaN = unknown and ignore those entries, like the metrics module.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from ecgkt.evaluate.metrics import FloatArray, MetricInputError, check_targets_and_scores

ThresholdRule = Literal["youden", "f1"]
TEMPERATURE_BOUNDS = (1e-3, 1e3)
UNDEFINED_THRESHOLD = 0.5
# The decision threshold of a label with no stored one (an uncalibrated bundle).
DEFAULT_THRESHOLD = 0.5


def _check_probabilities(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[FloatArray, FloatArray]:
    targets, probs = check_targets_and_scores(y_true, y_prob)
    if np.any((probs < 0.0) | (probs > 1.0)):
        raise MetricInputError("y_prob must contain probabilities in [0, 1]")
    return targets, probs


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 15) -> float:
    """Σ_b (n_b / n)·|mean(y in b) − mean(p in b)| over equal-width probability bins.

    Pooled over every known (record, label) entry: each entry is one binary forecast, which is the
    reliability-diagram reading of ECE for multi-label outputs. NaN when no entry is known.
    """
    if n_bins < 1:
        raise MetricInputError(f"n_bins must be >= 1, got {n_bins}")
    targets, probs = _check_probabilities(y_true, y_prob)
    known = ~np.isnan(targets)
    y, p = targets[known], probs[known]
    if y.size == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(bins, weights=y, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(gap).sum() / y.size)


def fit_temperature(logits: ArrayLike, y_true: ArrayLike) -> float:
    """The T > 0 minimising the mean masked NLL of sigmoid(logits / T) (one scalar for a whole head).

    Optimised over a = 1/T, where the NLL is convex (a logistic regression with one weight and no
    bias), with L-BFGS-B and the analytic gradient, so the minimum found is the global one.
    T is bounded to [1e-3, 1e3]: a bound is reached only by degenerate inputs (e.g. one class).
    """
    targets, scores = check_targets_and_scores(y_true, logits)
    known = ~np.isnan(targets)
    y, z = targets[known], scores[known]
    if y.size == 0:
        raise MetricInputError("fit_temperature needs at least one known target")

    def nll_and_gradient(params: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        scaled = params[0] * z
        nll = np.mean(np.logaddexp(0.0, scaled) - y * scaled)
        probability = 0.5 * (1.0 + np.tanh(0.5 * scaled))  # overflow-free sigmoid
        gradient = np.mean((probability - y) * z)
        return float(nll), np.array([gradient])

    low, high = TEMPERATURE_BOUNDS
    result = minimize(
        nll_and_gradient, x0=np.array([1.0]), jac=True, method="L-BFGS-B", bounds=[(1.0 / high, 1.0 / low)]
    )
    return float(1.0 / result.x[0])


def _best_threshold(labels: FloatArray, probs: FloatArray, rule: ThresholdRule) -> float:
    """Threshold t (predict positive when p ≥ t) maximising the rule over all distinct cut points.

    The returned t is the midpoint between the chosen cut score and the next lower score, so it
    lies strictly between the two classes on a separable problem instead of on a training point.
    """
    order = np.argsort(-probs, kind="stable")
    sorted_probs, sorted_labels = probs[order], labels[order]
    last_of_group = np.r_[np.diff(sorted_probs) != 0.0, True]  # cut after each distinct score
    true_pos = np.cumsum(sorted_labels)[last_of_group]
    false_pos = np.cumsum(1.0 - sorted_labels)[last_of_group]
    n_pos, n_neg = sorted_labels.sum(), labels.size - sorted_labels.sum()
    if rule == "youden":
        objective = true_pos / n_pos - false_pos / n_neg
    else:
        objective = 2.0 * true_pos / (2.0 * true_pos + false_pos + (n_pos - true_pos))
    cut_scores = sorted_probs[last_of_group]
    best = int(np.argmax(objective))
    if best + 1 < cut_scores.size:
        return float((cut_scores[best] + cut_scores[best + 1]) / 2.0)
    return float(cut_scores[best])


def choose_thresholds(y_true: ArrayLike, y_prob: ArrayLike, rule: ThresholdRule = "youden") -> FloatArray:
    """(K,) per-label probability thresholds; 0.5 where a label's known entries lack a class.

    `youden` maximises sensitivity + specificity − 1; `f1` maximises the F1 score of the positive class.
    """
    if rule not in ("youden", "f1"):
        raise MetricInputError(f"unknown threshold rule {rule!r}; choose 'youden' or 'f1'")
    targets, probs = _check_probabilities(y_true, y_prob)
    thresholds = np.full(targets.shape[1], UNDEFINED_THRESHOLD)
    for k in range(targets.shape[1]):
        known = ~np.isnan(targets[:, k])
        labels = targets[known, k]
        if labels.size and labels.min() != labels.max():
            thresholds[k] = _best_threshold(labels, probs[known, k], rule)
    return thresholds


def apply_temperature(probability: NDArray[np.floating], temperature: float | None) -> NDArray[np.float32]:
    """σ(logit(p) / T); identity when T is None (uncalibrated bundle)."""
    p = np.asarray(probability, dtype=np.float64)
    if temperature is None:
        return p.astype(np.float32)
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    scaled = (np.log(clipped) - np.log1p(-clipped)) / temperature
    return (0.5 * (1.0 + np.tanh(0.5 * scaled))).astype(np.float32)


def thresholds_for(labels: list[str], stored: dict[str, float] | None) -> NDArray[np.float32]:
    """Each label's stored decision threshold, DEFAULT_THRESHOLD where none is stored."""
    stored = stored or {}
    return np.array([stored.get(label, DEFAULT_THRESHOLD) for label in labels], dtype=np.float32)
