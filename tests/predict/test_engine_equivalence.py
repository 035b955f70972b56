"""The faster engine returns exactly what the per-label construction returned.

`Predictor.predict` now precomputes per-bundle constants, ranks all positive diagnoses' labs with one
sort and validates the result once; these tests rebuild the result the previous way (one pydantic
model per label, `top_supporting_labs` per diagnosis, the surrogate's JSON lists per call) and
require equality, for every explanation method offered for prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from predict_samples import DIAGNOSES, LABS, make_bundle, realistic_ecg_mv

from ecgkt import __version__
from ecgkt.bundle import load_bundle
from ecgkt.bundle_runner import window_average
from ecgkt.evaluate.calibration import apply_temperature
from ecgkt.explain.association import fit_association, save_association
from ecgkt.explain.supporting_labs import (
    RecordOutputs,
    SurrogateExplainer,
    top_supporting_labs,
    top_supporting_labs_rows,
)
from ecgkt.explain.surrogate import fit_surrogate, save_surrogate
from ecgkt.measure import measure_ecg
from ecgkt.predict.engine import (
    DiagnosisPrediction,
    LabPrediction,
    LabSupport,
    PredictionResult,
    Predictor,
)
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import EcgInput, prepare_windows, read_ecg_array


@pytest.fixture(scope="module")
def explained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every diagnosis positive (threshold 0), with a fitted association and surrogate."""
    path = make_bundle(tmp_path_factory.mktemp("equivalence") / "bundle", low_thresholds=True)
    rng = np.random.default_rng(4)
    diagnoses, labs = list(DIAGNOSES), list(LABS)
    diagnosis_targets = (rng.random((300, len(diagnoses))) < 0.3).astype(np.float64)
    lab_targets = (rng.random((300, len(labs))) < 0.4).astype(np.float64)
    save_association(path, fit_association(diagnosis_targets, lab_targets, diagnoses, labs))
    lab_probability = rng.random((60, len(labs)))
    diagnosis_probability = 1 / (1 + np.exp(-(lab_probability @ rng.normal(0, 2, (len(labs), len(diagnoses))))))
    save_surrogate(path, fit_surrogate(lab_probability, diagnosis_probability, diagnoses, labs))
    return path


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def surrogate_scores(explainer: SurrogateExplainer, lab_probability: np.ndarray) -> np.ndarray:
    """coefficient × probability (− the fitting fold's mean when centred), straight from the JSON lists."""
    surrogate = explainer.surrogate
    probs = np.asarray(lab_probability, dtype=np.float32)
    if explainer.centered:
        probs = probs - np.asarray(surrogate.lab_mean, dtype=np.float32)[None, :]
    coefficients = np.asarray(surrogate.coefficients, dtype=np.float32)
    return (coefficients[None, :, :] * probs[:, None, :]).astype(np.float32)


def reference_predict(predictor: Predictor, ecg: EcgInput) -> PredictionResult:
    """The engine's previous construction, kept here as the oracle."""
    manifest = predictor.manifest
    windows = prepare_windows(ecg, predictor.spec, manifest.preprocessing.window_samples)
    diag_logits, lab_logits = predictor.runner(windows)
    raw_diag, raw_lab = window_average(diag_logits), window_average(lab_logits)
    diag_prob = apply_temperature(raw_diag, manifest.temperature_diagnosis)
    lab_prob = apply_temperature(raw_lab, manifest.temperature_lab)
    positive = diag_prob >= predictor.diagnosis_thresholds
    scores = None
    if predictor.explainer is not None and positive.any():
        outputs = RecordOutputs(raw_lab[None, :], raw_diag[None, :], windows[None])
        if isinstance(predictor.explainer, SurrogateExplainer):
            scores = surrogate_scores(predictor.explainer, raw_lab[None, :])[0]
        else:
            scores = predictor.explainer.scores(outputs)[0]
    diagnoses = []
    for k, code in enumerate(manifest.diagnosis_labels):
        supporting = []
        if scores is not None and positive[k]:
            supporting = [
                LabSupport(
                    label=manifest.lab_labels[s.lab_index], probability=float(lab_prob[s.lab_index]), score=s.score
                )
                for s in top_supporting_labs(scores[k], predictor.top_labs)
            ]
        diagnoses.append(
            DiagnosisPrediction(
                code=code,
                title=manifest.diagnosis_titles.get(code, ""),
                probability=float(diag_prob[k]),
                threshold=float(predictor.diagnosis_thresholds[k]),
                positive=bool(positive[k]),
                validation_auroc=_finite(manifest.validation_auroc_diagnosis.get(code)),
                supporting_labs=supporting,
            )
        )
    diagnoses.sort(key=lambda d: d.probability, reverse=True)
    labs = [
        LabPrediction(
            label=label,
            probability=float(lab_prob[p]),
            threshold=float(predictor.lab_thresholds[p]),
            positive=bool(lab_prob[p] >= predictor.lab_thresholds[p]),
            validation_auroc=_finite(manifest.validation_auroc_lab.get(label)),
        )
        for p, label in enumerate(manifest.lab_labels)
    ]
    return PredictionResult(
        source=ecg.source,
        ecgkt_version=__version__,
        n_windows=int(windows.shape[0]),
        notes=[*ecg.notes, *predictor._model_notes()],
        diagnoses=diagnoses,
        labs=labs,
        measurements=measure_ecg(ecg.signal_mv, ecg.sampling_rate_hz).as_dict(),
    )


@pytest.mark.parametrize("method", ["association", "surrogate", "surrogate_centered", "gradient_x_probability"])
@pytest.mark.parametrize("top_labs", [2, 5, 10])
def test_predict_equals_the_per_label_construction(explained_bundle: Path, method: str, top_labs: int) -> None:
    predictor = Predictor(load_bundle(explained_bundle), explanation=method, top_labs=top_labs)  # type: ignore[arg-type]
    for seed in (1, 2):
        ecg = read_ecg_array(realistic_ecg_mv(seed=seed), 500, CANONICAL_LEADS, source=f"ecg-{seed}")
        result = predictor.predict(ecg)
        assert result == reference_predict(predictor, ecg)
        assert result.model_dump_json() == reference_predict(predictor, ecg).model_dump_json()
        assert any(d.supporting_labs for d in result.diagnoses)  # the comparison covered explanations


def test_uncalibrated_fallback_equals_the_per_label_construction(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    ecg = read_ecg_array(realistic_ecg_mv(seed=3), 500, CANONICAL_LEADS, source="ecg-3")
    assert predictor.predict(ecg) == reference_predict(predictor, ecg)


def test_rows_ranking_equals_one_ranking_per_row() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(0, 1, (40, 9)), 1).astype(np.float32)  # rounding makes ties common
    scores[3] = -1.0  # nothing positive
    scores[4] = 0.5  # all tied
    for top_k in (0, 1, 3, 9, 20, -2):
        rows = top_supporting_labs_rows(scores, top_k)
        assert rows == [top_supporting_labs(row, top_k) for row in scores]
    assert top_supporting_labs_rows(scores, 3, min_score=0.4) == [
        top_supporting_labs(row, 3, min_score=0.4) for row in scores
    ]
    with pytest.raises(ValueError, match="score matrix"):
        top_supporting_labs_rows(scores[0])


@pytest.mark.parametrize("centered", [False, True])
def test_surrogate_explainer_scores_equal_the_stored_surrogates(explained_bundle: Path, centered: bool) -> None:
    from ecgkt.explain.surrogate import load_surrogate

    surrogate = load_surrogate(explained_bundle)
    assert surrogate is not None
    probabilities = np.random.default_rng(1).random((7, len(LABS))).astype(np.float32)
    explainer = SurrogateExplainer(surrogate, centered=centered)
    outputs = RecordOutputs(probabilities, np.zeros((7, len(DIAGNOSES)), dtype=np.float32))
    expected = surrogate_scores(explainer, probabilities)
    np.testing.assert_array_equal(explainer.scores(outputs), expected)
    np.testing.assert_array_equal(surrogate.contributions(probabilities, centered=centered), expected)
