"""Explanation building blocks: ranking metrics, association baseline, surrogate, gradient alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from predict_samples import LABS, realistic_ecg_mv

from ecgkt.bundle import load_bundle
from ecgkt.explain.ranking import average_precision, ranking_metrics, rankings
from ecgkt.explain.supporting_labs import (
    ExplanationError,
    GradientAlignment,
    RecordOutputs,
    phi_association,
    top_supporting_labs,
)
from ecgkt.explain.surrogate import fit_surrogate, load_surrogate, save_surrogate
from ecgkt.predict.engine import preprocess_spec
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import prepare_windows, read_ecg_array


def test_ranking_metrics_on_hand_examples() -> None:
    rng = np.random.default_rng(0)
    relevant = np.array([False, True, False, True])
    perfect = np.array([[0.1, 0.9, 0.2, 0.8]])
    metrics = ranking_metrics(perfect, relevant, rng)
    assert metrics == {"p@1": 1.0, "p@3": pytest.approx(2 / 3), "p@5": pytest.approx(0.5), "map": 1.0}
    worst = np.array([[0.9, 0.1, 0.8, 0.2]])
    ranked = rankings(worst, rng)
    assert ranked.tolist() == [[0, 2, 3, 1]]
    # drivers found at ranks 3 and 4: AP = (1/3 + 2/4) / 2
    assert average_precision(ranked, relevant)[0] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_constant_scores_rank_at_chance_not_by_label_order() -> None:
    """Ties are broken at random: a method that says nothing must not win by label order."""
    relevant = np.zeros(10, dtype=bool)
    relevant[0] = True
    metrics = ranking_metrics(np.zeros((4000, 10)), relevant, np.random.default_rng(1))
    assert metrics["p@1"] == pytest.approx(0.1, abs=0.02)


def test_phi_association_matches_pearson_and_masks_unknown() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((500, 2)) < 0.4).astype(np.float32)
    m = np.stack([y[:, 0], 1 - y[:, 1], (rng.random(500) < 0.5)], axis=1).astype(np.float32)
    phi = phi_association(y, m)
    assert phi[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert phi[1, 1] == pytest.approx(-1.0, abs=1e-6)
    assert phi[0, 2] == pytest.approx(np.corrcoef(y[:, 0], m[:, 2])[0, 1], abs=1e-5)
    masked = m.copy()
    masked[:250, 2] = np.nan
    expected = np.corrcoef(y[250:, 0], m[250:, 2])[0, 1]
    assert phi_association(y, masked)[0, 2] == pytest.approx(expected, abs=1e-5)
    assert phi_association(np.ones((10, 1)), m[:10]).tolist() == [[0.0, 0.0, 0.0]]  # undefined → 0


def test_top_supporting_labs_keeps_positive_support_only() -> None:
    chosen = top_supporting_labs(np.array([0.2, -0.5, 0.9, 0.0, 0.1]), top_k=3)
    assert [(s.lab_index, s.score) for s in chosen] == [
        (2, pytest.approx(0.9)),
        (0, pytest.approx(0.2)),
        (4, pytest.approx(0.1)),
    ]
    assert top_supporting_labs(np.array([-1.0, 0.0]), top_k=3) == []


def test_surrogate_recovers_a_sparse_relation_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labs = rng.uniform(0.05, 0.95, (400, 6))
    logit = 4.0 * labs[:, 1] - 3.0 * labs[:, 4] + 0.05 * rng.standard_normal(400)
    diagnosis = 1 / (1 + np.exp(-np.stack([logit, np.zeros(400)], axis=1)))
    surrogate = fit_surrogate(labs, diagnosis, ["A", "B"], LABS, seed=0)
    coefficients = surrogate.coefficient_matrix()
    assert coefficients[0, 1] == pytest.approx(4.0, abs=0.3)
    assert coefficients[0, 4] == pytest.approx(-3.0, abs=0.3)
    assert np.abs(coefficients[0, [0, 2, 3, 5]]).max() < 0.2
    assert surrogate.cv_r2[0] is not None and surrogate.cv_r2[0] > 0.95
    assert surrogate.cv_r2[1] is None  # constant target: nothing to explain
    contributions = surrogate.contributions(labs[:3])
    np.testing.assert_allclose(contributions[:, 0, 1], coefficients[0, 1] * labs[:3, 1], rtol=1e-5)
    centred = surrogate.contributions(labs[:3], centered=True)
    np.testing.assert_allclose(centred[:, 0, 1], coefficients[0, 1] * (labs[:3, 1] - labs[:, 1].mean()), rtol=1e-4)
    save_surrogate(tmp_path, surrogate)
    loaded = load_surrogate(tmp_path)
    assert loaded == surrogate
    with pytest.raises(ExplanationError, match="other labels"):
        loaded.check_labels(["A", "C"], LABS)
    assert load_surrogate(tmp_path / "elsewhere") is None
    (tmp_path / "explanation_surrogate.json").write_text("{not json")
    with pytest.raises(ExplanationError, match="unreadable"):
        load_surrogate(tmp_path)


def test_surrogate_needs_enough_records() -> None:
    with pytest.raises(ExplanationError, match="at least"):
        fit_surrogate(np.zeros((5, 6)), np.full((5, 2), 0.5), ["A", "B"], LABS)


def test_gradient_alignment_finds_the_planted_pairs(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    spec = preprocess_spec(bundle.manifest)
    windows = np.stack(
        [prepare_windows(read_ecg_array(realistic_ecg_mv(seed=s), 500, CANONICAL_LEADS), spec) for s in range(3)]
    )
    probs = np.full((3, len(LABS)), 0.5, np.float32)
    outputs = RecordOutputs(
        lab_probability=probs, diagnosis_probability=np.full((3, 4), 0.5, np.float32), windows=windows
    )
    cosine = GradientAlignment(bundle.model).scores(outputs)
    assert cosine.shape == (3, 4, len(LABS))
    assert np.all(np.abs(cosine) <= 1.0 + 1e-5)
    np.testing.assert_allclose(cosine[:, 0, 0], 1.0, atol=1e-5)  # E875 ↔ Potassium_high
    assert np.all(cosine[:, 1, :].argmax(axis=1) == 1)  # N18 ↔ Creatinine_high
    weighted = GradientAlignment(bundle.model, weight_by_probability=True).scores(outputs)
    np.testing.assert_allclose(weighted, cosine * 0.5, atol=1e-6)
    with pytest.raises(ExplanationError, match="windows"):
        GradientAlignment(bundle.model).scores(RecordOutputs(lab_probability=probs, diagnosis_probability=probs))
