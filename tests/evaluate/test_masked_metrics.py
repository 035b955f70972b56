"""Masked AUROC, bootstrap CI and masked (focal) BCE against scikit-learn and literal recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from ecgkt.evaluate.metrics import (
    MetricInputError,
    bootstrap_macro_auroc_ci,
    masked_auroc_per_label,
    masked_bce_with_logits,
    masked_macro_auroc,
)


def _problem(n: int = 300, k: int = 5, seed: int = 0, missing: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Labels with NaNs and scores carrying signal, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < rng.uniform(0.1, 0.5, size=k)).astype(float)
    scores = np.round(y * rng.uniform(0.3, 1.5, size=k) + rng.normal(size=(n, k)), 1)
    y[rng.random((n, k)) < missing] = np.nan
    return y, scores


def test_per_label_auroc_equals_sklearn_on_the_known_entries_including_ties() -> None:
    y, scores = _problem()
    expected = [roc_auc_score(y[~np.isnan(y[:, k]), k], scores[~np.isnan(y[:, k]), k]) for k in range(5)]
    np.testing.assert_allclose(masked_auroc_per_label(y, scores), expected, rtol=1e-12)


def test_unknown_entries_do_not_count_as_negatives() -> None:
    y = np.array([1.0, 0.0, np.nan, np.nan])
    scores = np.array([0.9, 0.1, 0.95, 0.99])  # NaN rows score high: as negatives they would hurt
    assert masked_auroc_per_label(y, scores)[0] == 1.0


def test_labels_with_one_class_are_nan_and_skipped_by_the_macro_average() -> None:
    y, scores = _problem(k=4)
    y[:, 1] = np.where(np.isnan(y[:, 1]), np.nan, 1.0)  # only positives known
    y[:, 3] = np.nan  # nothing known
    per_label = masked_auroc_per_label(y, scores)
    assert np.isnan(per_label[1]) and np.isnan(per_label[3])
    assert masked_macro_auroc(y, scores) == pytest.approx(np.mean(per_label[[0, 2]]))
    assert np.isnan(masked_macro_auroc(np.full((4, 2), np.nan), np.zeros((4, 2))))


def test_bootstrap_equals_literal_resampling_of_records() -> None:
    y, scores = _problem(n=80, k=3, seed=4)
    n_resamples, seed = 40, 7
    draws = np.random.default_rng(seed).integers(0, 80, size=(n_resamples, 80))
    literal = np.array([masked_macro_auroc(y[d], scores[d]) for d in draws])
    point, low, high = bootstrap_macro_auroc_ci(y, scores, n_resamples=n_resamples, seed=seed)
    assert point == pytest.approx(masked_macro_auroc(y, scores))
    assert (low, high) == pytest.approx(tuple(np.quantile(literal, [0.025, 0.975])), rel=1e-12)


def test_bootstrap_interval_contains_the_point_and_narrows_with_more_records() -> None:
    small = bootstrap_macro_auroc_ci(*_problem(n=150, seed=1), n_resamples=300)
    large = bootstrap_macro_auroc_ci(*_problem(n=3000, seed=1), n_resamples=300)
    for point, low, high in (small, large):
        assert low <= point <= high
    assert (large[2] - large[1]) < 0.5 * (small[2] - small[1])


def test_bootstrap_is_deterministic_given_a_seed() -> None:
    y, scores = _problem(seed=2)
    assert bootstrap_macro_auroc_ci(y, scores, 50, seed=3) == bootstrap_macro_auroc_ci(y, scores, 50, seed=3)
    assert bootstrap_macro_auroc_ci(y, scores, 50, seed=3) != bootstrap_macro_auroc_ci(y, scores, 50, seed=4)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(MetricInputError, match="same"):
        masked_auroc_per_label(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(MetricInputError, match="0, 1 or NaN"):
        masked_auroc_per_label(np.array([0.0, 2.0]), np.array([0.1, 0.2]))
    with pytest.raises(MetricInputError, match="NaN or infinite"):
        masked_macro_auroc(np.array([0.0, 1.0]), np.array([0.1, np.nan]))
    with pytest.raises(MetricInputError, match="confidence"):
        bootstrap_macro_auroc_ci(np.array([0.0, 1.0]), np.array([0.1, 0.2]), confidence=1.5)


def test_masked_bce_is_the_mean_over_known_entries_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    targets = (torch.rand(6, 4) < 0.4).float()
    targets[torch.rand(6, 4) < 0.3] = float("nan")
    known = ~torch.isnan(targets)
    loss = masked_bce_with_logits(logits, targets)
    expected = F.binary_cross_entropy_with_logits(logits[known], targets[known])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[~known] == 0) and torch.all(logits.grad[known] != 0)


def test_all_unknown_batch_gives_zero_loss_and_zero_gradient() -> None:
    logits = torch.randn(3, 2, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.full((3, 2), float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None and torch.all(logits.grad == 0)


def test_focal_bce_matches_its_formula_and_downweights_easy_entries() -> None:
    logits = torch.tensor([[3.0, -2.0, 0.1], [-0.5, 2.5, 1.0]])
    targets = torch.tensor([[1.0, 0.0, float("nan")], [1.0, 1.0, 0.0]])
    gamma = 2.0
    known = ~torch.isnan(targets)
    p = torch.sigmoid(logits[known])
    t = targets[known]
    p_t = p * t + (1 - p) * (1 - t)
    expected = (-((1 - p_t) ** gamma) * torch.log(p_t)).mean()
    focal = masked_bce_with_logits(logits, targets, focal_gamma=gamma)
    assert focal.item() == pytest.approx(expected.item(), rel=1e-5)
    assert focal.item() < masked_bce_with_logits(logits, targets).item()
    with pytest.raises(MetricInputError, match="focal_gamma"):
        masked_bce_with_logits(logits, targets, focal_gamma=-1.0)
