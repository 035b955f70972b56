"""The prediction engine: window averaging, temperatures, thresholds, runners, input invariances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from predict_samples import DIAGNOSES, LABS, make_bundle, realistic_ecg_mv

from ecgkt.bundle import load_bundle
from ecgkt.bundle_runner import window_average
from ecgkt.evaluate.calibration import apply_temperature
from ecgkt.predict.engine import (
    FALLBACK_NOTE,
    UNCALIBRATED_NOTE,
    Predictor,
    explanation_method_of,
)
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import read_ecg_array

# Band-limited (< 25 Hz) so 500 Hz and 1000 Hz samplings describe the same continuous signal.
_FREQUENCIES_HZ = np.array([1.1, 2.3, 5.1, 11.7, 19.0])
_AMPLITUDES_MV = np.array([0.6, 0.4, 0.25, 0.12, 0.05])


def band_limited_ecg(fs: float, seconds: float = 10.0, seed: int = 3) -> np.ndarray:
    t = np.arange(round(fs * seconds)) / fs
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, (12, len(_FREQUENCIES_HZ)))
    waves = np.sin(2 * np.pi * _FREQUENCIES_HZ[None, :, None] * t[None, None, :] + phases[:, :, None])
    return (_AMPLITUDES_MV[None, :, None] * waves).sum(axis=1)


def _probabilities(result: object) -> dict[str, float]:
    out = {f"dx:{d.code}": d.probability for d in result.diagnoses}  # type: ignore[attr-defined]
    out.update({f"lab:{lab.label}": lab.probability for lab in result.labs})  # type: ignore[attr-defined]
    return out


def test_window_average_is_the_mean_of_window_sigmoids() -> None:
    logits = np.array([[-2.0, 0.0], [2.0, 4.0]], dtype=np.float32)
    expected = (1 / (1 + np.exp(-logits))).mean(axis=0)
    np.testing.assert_allclose(window_average(logits), expected, rtol=1e-6)


def test_temperature_scales_the_logit_of_the_averaged_probability() -> None:
    p = np.array([0.1, 0.5, 0.9], dtype=np.float32)
    np.testing.assert_allclose(apply_temperature(p, None), p)
    scaled = apply_temperature(p, 2.0)
    expected = 1 / (1 + np.exp(-np.log(p / (1 - p)) / 2.0))
    np.testing.assert_allclose(scaled, expected, rtol=1e-5)
    assert scaled[1] == pytest.approx(0.5)


def test_uncalibrated_prediction_structure(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    result = predictor.predict(read_ecg_array(realistic_ecg_mv(seed=1), 500, CANONICAL_LEADS, source="ecg-1"))
    assert result.source == "ecg-1"
    assert result.n_windows == 4
    assert [d.code for d in result.diagnoses] != []
    assert {d.code for d in result.diagnoses} == set(DIAGNOSES)
    assert [lab.label for lab in result.labs] == LABS
    probabilities = [d.probability for d in result.diagnoses]
    assert probabilities == sorted(probabilities, reverse=True)
    assert UNCALIBRATED_NOTE in result.notes and FALLBACK_NOTE in result.notes
    assert explanation_method_of(result) == "gradient_x_probability"
    for d in result.diagnoses:
        assert d.threshold == 0.5
        assert d.positive == (d.probability >= 0.5)
        assert d.title == DIAGNOSES[d.code]
        if not d.positive:
            assert d.supporting_labs == []
        assert all(s.score > 0 for s in d.supporting_labs)
        assert len(d.supporting_labs) <= 5
    by_code = {d.code: d for d in result.diagnoses}
    assert by_code["E875"].validation_auroc == pytest.approx(0.81)
    assert by_code["R07"].validation_auroc is None  # NaN in the manifest is reported as unknown


def test_planted_driver_is_the_top_supporting_lab(tmp_path: Path) -> None:
    """E87.5 reads the same direction of h_x as Potassium_high: gradient alignment must put it first."""
    bundle = load_bundle(make_bundle(tmp_path / "bundle", low_thresholds=True))  # every diagnosis positive
    predictor = Predictor(bundle, explanation="gradient", top_labs=3)
    for seed in range(3):
        result = predictor.predict(read_ecg_array(realistic_ecg_mv(seed=seed), 500, CANONICAL_LEADS))
        by_code = {d.code: d for d in result.diagnoses}
        assert all(d.positive for d in result.diagnoses)
        assert by_code["E875"].supporting_labs[0].label == "Potassium_high"
        assert by_code["E875"].supporting_labs[0].score == pytest.approx(1.0, abs=1e-4)
        assert by_code["N18"].supporting_labs[0].label == "Creatinine_high"
        assert len(by_code["N18"].supporting_labs) <= 3


def test_calibrated_bundle_uses_its_thresholds_temperatures_and_association(calibrated_bundle_path: Path) -> None:
    bundle = load_bundle(calibrated_bundle_path)
    predictor = Predictor(bundle)
    assert predictor.explanation_method == "association"
    for method in ("surrogate", "surrogate_centered", "gradient", "gradient_x_probability"):
        assert Predictor(bundle, explanation=method).explanation_method == method
    result = predictor.predict(read_ecg_array(realistic_ecg_mv(seed=2), 500, CANONICAL_LEADS))
    assert UNCALIBRATED_NOTE not in result.notes and FALLBACK_NOTE not in result.notes
    thresholds = bundle.manifest.thresholds_diagnosis
    assert thresholds is not None
    for d in result.diagnoses:
        assert d.threshold == pytest.approx(thresholds[d.code])
        assert d.positive == (d.probability >= d.threshold)
    # association score = phi(diagnosis, lab) × predicted lab probability
    from ecgkt.explain.association import load_association

    association = load_association(calibrated_bundle_path)
    assert association is not None
    phi = association.matrix()
    lab_probability = {lab.label: lab.probability for lab in result.labs}
    for d in result.diagnoses:
        k = bundle.manifest.diagnosis_labels.index(d.code)
        for s in d.supporting_labs:
            p = bundle.manifest.lab_labels.index(s.label)
            assert s.probability == pytest.approx(lab_probability[s.label])
            # scores use the raw lab probability; with T_lab the shown probability is calibrated
            assert s.score == pytest.approx(phi[k, p] * raw_probability(bundle, s.probability), rel=1e-3, abs=1e-6)


def raw_probability(bundle: object, calibrated: float) -> float:
    """Invert the lab temperature: the explainers see the raw window-averaged probability."""
    temperature = bundle.manifest.temperature_lab  # type: ignore[attr-defined]
    logit = np.log(calibrated / (1 - calibrated)) * temperature
    return float(1 / (1 + np.exp(-logit)))


def test_missing_fitted_explanation_is_an_error_when_asked_for(bundle_path: Path) -> None:
    bundle = load_bundle(bundle_path)
    with pytest.raises(FileNotFoundError, match="ecgkt calibrate"):
        Predictor(bundle, explanation="association")


def test_custom_runner_is_used_and_checked(bundle_path: Path) -> None:
    """The service passes an onnxruntime runner: the engine must use it, and reject wrong shapes."""
    bundle = load_bundle(bundle_path)
    calls: list[tuple[int, ...]] = []

    def runner(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(windows.shape)
        diag = np.tile(np.array([[3.0, -3.0, 0.0, -1.0]], np.float32), (windows.shape[0], 1))
        return diag, np.zeros((windows.shape[0], len(LABS)), np.float32)

    result = Predictor(bundle, runner=runner).predict(read_ecg_array(realistic_ecg_mv(), 500, CANONICAL_LEADS))
    assert calls == [(4, 12, 250)]
    by_code = {d.code: d.probability for d in result.diagnoses}
    assert by_code["E875"] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-5)
    assert by_code["I10"] == pytest.approx(0.5)

    def bad_runner(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((windows.shape[0], 2), np.float32), np.zeros((windows.shape[0], len(LABS)), np.float32)

    with pytest.raises(RuntimeError, match="runner returned shapes"):
        Predictor(bundle, runner=bad_runner).predict(read_ecg_array(realistic_ecg_mv(), 500, CANONICAL_LEADS))


def test_lead_order_does_not_change_the_prediction(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    signal = realistic_ecg_mv(seed=4)
    reference = predictor.predict(read_ecg_array(signal, 500, CANONICAL_LEADS))
    order = np.random.default_rng(0).permutation(12)
    names = [("Lead " + CANONICAL_LEADS[i]).upper() if i % 2 else CANONICAL_LEADS[i] for i in order]
    shuffled = predictor.predict(read_ecg_array(signal[order], 500, names))
    assert _probabilities(shuffled) == _probabilities(reference)
    mimic_order = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
    permutation = [CANONICAL_LEADS.index(lead) for lead in mimic_order]
    mimic = predictor.predict(read_ecg_array(signal[permutation], 500, mimic_order))
    assert _probabilities(mimic) == _probabilities(reference)


def test_microvolts_and_millivolts_give_the_same_prediction(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    signal = realistic_ecg_mv(seed=5).astype(np.float64)
    millivolts = predictor.predict(read_ecg_array(signal, 500, CANONICAL_LEADS, units="mV"))
    microvolts = predictor.predict(read_ecg_array(signal * 1000.0, 500, CANONICAL_LEADS, units="uV"))
    automatic = predictor.predict(read_ecg_array(signal * 1000.0, 500, CANONICAL_LEADS))  # amplitude rule
    for other in (microvolts, automatic):
        for key, value in _probabilities(millivolts).items():
            assert _probabilities(other)[key] == pytest.approx(value, abs=1e-5)


def test_1000_hz_and_500_hz_give_the_same_prediction(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    at_500 = predictor.predict(read_ecg_array(band_limited_ecg(500), 500, CANONICAL_LEADS))
    at_1000 = predictor.predict(read_ecg_array(band_limited_ecg(1000), 1000, CANONICAL_LEADS))
    assert any("resampled 1000→100 Hz" in note for note in at_1000.notes)
    for key, value in _probabilities(at_500).items():
        assert _probabilities(at_1000)[key] == pytest.approx(value, abs=2e-3)


def test_records_of_other_lengths_use_more_or_fewer_windows(bundle_path: Path) -> None:
    predictor = Predictor.from_path(bundle_path)
    long = predictor.predict(read_ecg_array(realistic_ecg_mv(seconds=20.0), 500, CANONICAL_LEADS))
    short = predictor.predict(read_ecg_array(realistic_ecg_mv(seconds=5.0), 500, CANONICAL_LEADS))
    assert (long.n_windows, short.n_windows) == (8, 2)
