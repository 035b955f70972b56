"""Per-patient ground truth, the direct/concept/counterfactual methods, and their evaluation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.explain.patient import ConceptShapley, PatientExplanation, explanation_kind, fit_concept_head
from ecgkt.explain.patient_eval import case_metrics, cluster_bootstrap, evaluate_patient_explanations, macro
from ecgkt.explain.patient_truth import patient_truth
from ecgkt.explain.population import fit_direct_links, share_over_duplicates
from ecgkt.explain.supporting_labs import RecordOutputs
from ecgkt.store import Store


def test_direct_links_separate_a_confounded_lab() -> None:
    """Lab driven by diagnosis 0 only; diagnosis 1 travels with 0. phi links both, L1 keeps the direct one."""
    rng = np.random.default_rng(0)
    n = 4000
    d0 = rng.random(n) < 0.3
    d1 = np.where(d0, rng.random(n) < 0.7, rng.random(n) < 0.1)
    d2 = rng.random(n) < 0.3
    lab = np.where(d0, rng.random(n) < 0.8, rng.random(n) < 0.1).astype(np.float32)
    beta = fit_direct_links(np.stack([d0, d1, d2], 1).astype(np.float32), lab[:, None])
    assert beta[0, 0] > 1.0
    assert abs(beta[1, 0]) < 0.3 * beta[0, 0]
    assert abs(beta[2, 0]) < 0.3 * beta[0, 0]


def test_near_duplicate_labels_share_their_coefficient() -> None:
    beta = np.array([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
    phi = np.array([[1.0, 0.1, 0.9], [0.1, 1.0, 0.0], [0.9, 0.0, 1.0]])
    shared = share_over_duplicates(beta, phi)
    np.testing.assert_allclose(shared[2], [2.0, 0.0])
    np.testing.assert_allclose(shared[1], [0.0, 0.5])


def test_concept_head_recovers_weights_and_shapley_is_exact() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 4))
    y = np.stack([1.5 * z[:, 0] + 0.5 * z[:, 2] + 0.3, -z[:, 1] + 0.0 * z[:, 3]], axis=1)
    weights, intercepts, r2 = fit_concept_head(z, y)
    assert weights[0, 0] == pytest.approx(1.5, abs=0.1) and weights[0, 2] == pytest.approx(0.5, abs=0.1)
    assert (weights >= 0).all()  # non-negative: diagnosis 1 is only lowered by lab 1, so no support
    assert r2[0] is not None and r2[0] > 0.98
    fitted = PatientExplanation(
        diagnosis_labels=["a", "b"], lab_labels=["w", "x", "y", "z"], direct=np.zeros((2, 4)).tolist(),
        concept_weights=weights.tolist(), concept_direct_weights=weights.tolist(),
        concept_intercepts=intercepts.tolist(), concept_direct_intercepts=intercepts.tolist(),
        concept_baseline=z.mean(0).tolist(), diagnosis_baseline=y.mean(0).tolist(), concept_r2=r2,
    )
    probs = 1 / (1 + np.exp(-z[:5]))
    diag = 1 / (1 + np.exp(-(z[:5] @ weights.T + intercepts)))
    explainer = ConceptShapley(fitted)
    outputs = RecordOutputs(lab_probability=probs.astype(np.float32), diagnosis_probability=diag.astype(np.float32))
    phi = explainer.scores(outputs)
    # efficiency: Shapley values add up to the read-out minus its value at the baseline
    expected = (z[:5] - z.mean(0)) @ weights.T
    np.testing.assert_allclose(phi.sum(axis=2), expected, atol=1e-3)
    np.testing.assert_allclose(explainer.completeness(outputs)[:, 0], 1.0 + 0 * expected[:, 0], atol=0.05)


def test_case_metrics_and_macro_bootstrap() -> None:
    scores = np.zeros((3, 1, 4), dtype=np.float32)
    scores[:, 0, :] = [[4, 3, 2, 1], [1, 2, 3, 4], [4, 3, 2, 1]]
    relevant = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    m = case_metrics(scores, {0: (np.arange(3), relevant)}, np.random.default_rng(0))
    np.testing.assert_allclose(m.values["p@1"], [1, 0, 0])
    np.testing.assert_allclose(m.values["ap"], [1, 0.25, 0.5])
    assert macro(m.values["ap"], m.diagnosis)[0] == pytest.approx(1.75 / 3)
    weights = cluster_bootstrap(np.array([1, 1, 2]), 50, 0)
    assert weights.shape == (50, 3) and (weights[:, 0] == weights[:, 1]).all()  # same patient moves together


def _patient_drivers(store_path: Path, folder: Path) -> Path:
    """Every test-fold ECG with a positive E875 label has hyperkalaemia driving Potassium_high; CKD ones Creatinine."""
    store = Store.open(store_path)
    study = store.records["study_id"].to_numpy()
    rows = []
    for i, s in enumerate(study.tolist()):
        if i % 2 == 0:
            rows += [(s, "hyperkalaemia", "state", ""), (s, "hyperkalaemia", "lab", "Potassium_high")]
        if i % 3 == 0:
            rows += [(s, "ckd", "state", ""), (s, "ckd", "lab", "Creatinine_high")]
    frame = pl.DataFrame(rows, schema=["study_id", "state", "kind", "target"], orient="row")
    frame.write_parquet(folder / "patient_drivers.parquet")
    return folder


@pytest.fixture(scope="module")
def patient_ground_truth(ground_truth_path: Path, store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("patient-gt")
    shutil.copy(ground_truth_path / "graph.json", folder / "graph.json")
    return _patient_drivers(store_path, folder)


def test_patient_truth_maps_labels_to_present_states(patient_ground_truth: Path, store_path: Path) -> None:
    import json

    store = Store.open(store_path)
    graph = json.loads((patient_ground_truth / "graph.json").read_text())
    drivers = pl.read_parquet(patient_ground_truth / "patient_drivers.parquet")
    truth = patient_truth(drivers, store.records["study_id"].to_numpy()[:6], graph,
                          ["E875", "N18", "I10"], ["Potassium_high", "Creatinine_high"])
    assert truth.relevant[0][:, 0].tolist() == [True, False, True, False, True, False]
    assert truth.relevant[1][:, 1].tolist() == [True, False, False, True, False, False]
    assert not truth.relevant[2].any()  # hypertension: a state, but no lab driver


def test_evaluation_runs_end_to_end(bundle_path: Path, store_path: Path, patient_ground_truth: Path) -> None:
    result = evaluate_patient_explanations(
        bundle_path, store_path, patient_ground_truth, split="test", n_resamples=50, stability_seeds=(0, 1)
    )
    methods = result["methods"]
    assert {"cooccurrence", "direct", "concept_shapley", "embedding_counterfactual"} <= set(methods)
    patient = methods["concept_shapley"]["per_patient"]
    assert patient["n_cases"] > 0 and 0.0 <= patient["map"]["value"] <= 1.0
    lo, hi = patient["map"]["ci"]
    assert lo <= patient["map"]["value"] <= hi
    assert "minus_reference_ci" in patient["map"]
    assert "concept_shapley" in result["faithfulness"]
    assert result["effective_rank"]["participation_ratio"] >= 1.0
    assert set(result["stability"]["concept_shapley"]) >= {"map_per_seed", "top3_jaccard_vs_first_seed"}


def test_every_method_has_a_one_line_kind() -> None:
    assert explanation_kind("cooccurrence").startswith("population")
    assert explanation_kind("concept_shapley").startswith("this patient")


def test_release_calibration_records_a_default_the_engine_uses(
    bundle_path: Path, store_path: Path, patient_ground_truth: Path, tmp_path: Path
) -> None:
    from ecgkt.bundle import load_bundle
    from ecgkt.explain.bundle_calibration import CANDIDATES, calibrate_for_release
    from ecgkt.explain.patient import bundle_default_method
    from ecgkt.predict.engine import Predictor, build_explainer

    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    release = calibrate_for_release(bundle, store_path, patient_ground_truth)
    assert release.default_method in CANDIDATES
    assert set(release.validation_map_per_patient) <= set(CANDIDATES)
    assert bundle_default_method(bundle) == release.default_method
    loaded = load_bundle(bundle)
    explainer, _ = build_explainer(loaded, None)
    assert explainer is not None and explainer.name == release.default_method
    shapley, _ = build_explainer(loaded, "concept_shapley")  # type: ignore[arg-type]
    assert shapley is not None and shapley.name == "concept_shapley"
    predictor = Predictor(loaded)
    assert predictor.calibrated

    from predict_samples import realistic_ecg_mv

    from ecgkt.predict.engine import explanation_method_of
    from ecgkt.report.html import render_report_fragment
    from ecgkt.signals.leads import CANONICAL_LEADS
    from ecgkt.signals.readers import read_ecg_array

    ecg = read_ecg_array(realistic_ecg_mv(seed=3), 500, CANONICAL_LEADS, source="x.npy")
    result = predictor.predict(ecg)
    assert explanation_method_of(result) == release.default_method  # what the service's report shows
    kind_notes = [note for note in result.notes if note.startswith("supporting labs (")]
    assert len(kind_notes) == 1
    html = render_report_fragment(result, ecg, loaded.manifest)
    assert "Explanation shown:" in html


def test_calibrate_cli_names_a_ground_truth_without_per_patient_drivers(
    bundle_path: Path, store_path: Path, ground_truth_path: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from ecgkt.cli import app

    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    result = CliRunner().invoke(app, ["calibrate", str(bundle), str(store_path), "--ground-truth",
                                      str(ground_truth_path)])
    assert result.exit_code == 2
    assert "patient_drivers.parquet" in result.output and "Traceback" not in result.output
    assert (bundle / "bundle.json").read_bytes() == (bundle_path / "bundle.json").read_bytes()  # untouched
