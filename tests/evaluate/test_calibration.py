"""ECE, temperature scaling and threshold choice on synthetic problems with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ecgkt.evaluate.calibration import choose_thresholds, expected_calibration_error, fit_temperature
from ecgkt.evaluate.metrics import MetricInputError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_ece_of_calibrated_probabilities_is_near_zero_and_of_distorted_ones_is_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((20000, 3))
    y = (rng.random(p.shape) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, p**3) > 0.1


def test_ece_matches_a_hand_computed_example_and_ignores_unknown_entries() -> None:
    y = np.array([[0.0, 1.0], [1.0, np.nan], [1.0, 0.0]])
    p = np.array([[0.1, 0.7], [0.8, 0.99], [0.9, 0.2]])
    # two bins: [0, .5) holds p = .1, .2 with labels 0, 0 ; [.5, 1] holds .7, .8, .9 with labels 1, 1, 1
    expected = (2 / 5) * abs(0 - 0.15) + (3 / 5) * abs(1 - 0.8)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(expected)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    rng = np.random.default_rng(1)
    z = 2.0 * rng.normal(size=(20000, 2))
    y = (rng.random(z.shape) < _sigmoid(z)).astype(float)
    fitted = fit_temperature(z * true_temperature, y)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    calibrated = _sigmoid(z * true_temperature / fitted)
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(
        y, _sigmoid(z * true_temperature)
    )


def test_fit_temperature_ignores_unknown_targets() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 2))
    y = (rng.random(z.shape) < _sigmoid(z)).astype(float)
    masked = y.copy()
    masked[:100] = np.nan
    assert fit_temperature(z, masked) == pytest.approx(fit_temperature(z[100:], y[100:]), rel=1e-6)
    with pytest.raises(MetricInputError, match="at least one known"):
        fit_temperature(z, np.full(z.shape, np.nan))


@pytest.mark.parametrize("rule", ["youden", "f1"])
def test_threshold_on_a_separable_problem_lies_between_the_classes(rule: str) -> None:
    rng = np.random.default_rng(3)
    negatives = rng.uniform(0.05, 0.4, size=30)
    positives = rng.uniform(0.6, 0.95, size=10)
    y = np.r_[np.zeros(30), np.ones(10)]
    threshold = choose_thresholds(y[:, None], np.r_[negatives, positives][:, None], rule=rule)[0]  # type: ignore[arg-type]
    assert negatives.max() < threshold <= positives.min()


def test_youden_threshold_is_optimal_over_every_cut_point() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(400) < 0.3).astype(float)
    p = _sigmoid(1.2 * y + rng.normal(size=400))
    threshold = choose_thresholds(y, p)[0]

    def youden(t: float) -> float:
        predicted = p >= t
        return predicted[y == 1].mean() - predicted[y == 0].mean()

    best_possible = max(youden(t) for t in np.unique(p))
    assert youden(threshold) == pytest.approx(best_possible)


def test_undefined_labels_get_one_half_and_unknown_entries_are_ignored() -> None:
    y = np.array([[0.0, 1.0, np.nan], [1.0, 1.0, np.nan], [np.nan, 1.0, np.nan], [0.0, 1.0, np.nan]])
    p = np.array([[0.2, 0.3, 0.1], [0.7, 0.4, 0.2], [0.01, 0.5, 0.3], [0.3, 0.6, 0.4]])
    thresholds = choose_thresholds(y, p)
    assert thresholds[1] == 0.5 and thresholds[2] == 0.5
    assert 0.3 < thresholds[0] <= 0.7  # the NaN row's 0.01 plays no part
    with pytest.raises(MetricInputError, match="rule"):
        choose_thresholds(y, p, rule="accuracy")  # type: ignore[arg-type]
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        choose_thresholds(y, p * 3)
