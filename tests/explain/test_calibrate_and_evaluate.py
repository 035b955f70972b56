"""`ecgkt calibrate` and `ecgkt explain-eval` on a planted bundle, a small store and a ground-truth graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from predict_samples import DIAGNOSES, LABS
from typer.testing import CliRunner

from ecgkt.bundle import load_bundle
from ecgkt.bundle_runner import window_average
from ecgkt.cli import app
from ecgkt.explain.association import load_association
from ecgkt.explain.calibrate_bundle import REPORT_FILE, calibrate_bundle
from ecgkt.explain.evaluation import ExplanationEvaluation, evaluate_explanations
from ecgkt.explain.ground_truth import GroundTruthError, ground_truth_drivers, load_graph
from ecgkt.explain.store_outputs import fold_outputs
from ecgkt.explain.supporting_labs import phi_association
from ecgkt.explain.surrogate import SURROGATE_FILE
from ecgkt.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def evaluation(bundle_path: Path, store_path: Path, ground_truth_path: Path) -> ExplanationEvaluation:
    return evaluate_explanations(bundle_path, store_path, ground_truth_path)


def test_fold_outputs_match_the_engine_windows(bundle_path: Path, store_path: Path) -> None:
    bundle, store = load_bundle(bundle_path), Store.open(store_path)
    fold = fold_outputs(bundle, store, "val")
    assert len(fold) == len(store.split_indices("val"))
    assert fold.diagnosis_logits.shape == (len(fold), 4, len(DIAGNOSES))
    import torch

    first = torch.from_numpy(np.array(store.signals[fold.indices[0]], np.float32)[None])
    with torch.no_grad():
        windows = first.reshape(1, 12, 4, 250).permute(0, 2, 1, 3).reshape(4, 12, 250)
        diag, _ = bundle.model(windows)
    np.testing.assert_allclose(fold.diagnosis_probability[0], window_average(diag.numpy()), rtol=1e-5)


def test_calibrate_writes_temperatures_thresholds_and_surrogate(
    bundle_path: Path, store_path: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    weights_before = (bundle / "weights.safetensors").read_bytes()
    summary = calibrate_bundle(bundle, store_path)
    manifest = load_bundle(bundle).manifest  # still a valid bundle
    assert manifest.temperature_diagnosis == pytest.approx(summary.diagnosis.temperature)
    assert manifest.temperature_lab is not None and manifest.temperature_lab > 0
    assert set(manifest.thresholds_diagnosis or {}) == set(DIAGNOSES)
    assert set(manifest.thresholds_lab or {}) == set(LABS)
    assert all(0.0 <= t <= 1.0 for t in (manifest.thresholds_diagnosis or {}).values())
    assert (bundle / "weights.safetensors").read_bytes() == weights_before
    assert (bundle / SURROGATE_FILE).is_file()
    association = load_association(bundle)
    assert association is not None and association.fitted_on == "training fold"
    store = Store.open(store_path)
    train = store.split_indices("train")
    expected = phi_association(store.diagnosis_targets()[train], store.lab_targets()[train])
    np.testing.assert_allclose(association.matrix(), expected, atol=1e-6)
    report = json.loads((bundle / REPORT_FILE).read_text())
    assert report["threshold_rule"] == "youden"
    for head in (summary.diagnosis, summary.lab):
        assert head.ece_validation_before is not None and head.ece_validation_after is not None
        # temperature scaling minimises NLL on this fold; it must not make calibration clearly worse
        assert head.ece_validation_after <= head.ece_validation_before + 0.02
    assert not list(bundle.glob(".*"))  # no temporary files left behind


def test_calibrate_cli_and_its_errors(bundle_path: Path, store_path: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    result = runner.invoke(app, ["calibrate", str(bundle), str(store_path), "--rule", "f1"])
    assert result.exit_code == 0, result.stderr
    assert "ECE" in result.stdout
    result = runner.invoke(app, ["calibrate", str(bundle), str(tmp_path / "no-store")])
    assert result.exit_code == 2 and "no-store" in result.stderr
    result = runner.invoke(app, ["calibrate", str(bundle), str(store_path), "--rule", "coin"])
    assert result.exit_code == 2 and "--rule" in result.stderr


def test_ground_truth_mapping(bundle_path: Path, ground_truth_path: Path) -> None:
    truth = ground_truth_drivers(load_graph(ground_truth_path), list(DIAGNOSES), LABS)
    assert truth.drivers == {
        "E875": frozenset({"Potassium_high"}),
        "N18": frozenset({"Creatinine_high", "Urea Nitrogen_high"}),  # Albumin_low is not a bundle label
    }
    assert truth.states["N18"] == ("ckd",)
    assert truth.skipped_no_lab_driver == ["I10"]
    assert truth.skipped_no_state == ["R07"]
    with pytest.raises(GroundTruthError, match="no ground-truth graph"):
        load_graph(ground_truth_path.parent / "missing")
    broken = ground_truth_path.parent / "broken.json"
    broken.write_text(json.dumps({"schema_version": 1, "icd_codes": [{"codes": []}], "lab_effects": []}))
    with pytest.raises(GroundTruthError, match="malformed"):
        ground_truth_drivers(load_graph(broken), ["E875"], LABS)


def test_planted_drivers_are_found_and_beat_the_random_baseline(evaluation: ExplanationEvaluation) -> None:
    scores = {m.method: m for m in evaluation.methods}
    assert set(scores) == {
        "association",
        "gradient",
        "gradient_x_probability",
        "surrogate",
        "surrogate_centered",
        "cooccurrence",
        "probability",
        "random",
    }
    assert scores["gradient"].per_diagnosis["E875"]["p@1"] == 1.0
    assert scores["gradient"].precision_at["1"] == 1.0
    assert scores["surrogate"].per_diagnosis["E875"]["p@1"] == 1.0
    for name in ("gradient", "surrogate"):
        assert scores[name].mean_average_precision > scores["random"].mean_average_precision + 0.2
    assert scores["random"].baseline and not scores["surrogate"].baseline
    assert scores["gradient"].n_diagnoses == 2 and scores["gradient"].n_cases >= 20
    assert evaluation.diagnoses_evaluated == {
        "E875": ["Potassium_high"],
        "N18": ["Creatinine_high", "Urea Nitrogen_high"],
    }


def test_fidelity_is_reported(evaluation: ExplanationEvaluation) -> None:
    fidelity = evaluation.fidelity
    assert fidelity.n_diagnoses >= 2
    # E875's logit is a monotone function of Potassium_high's probability: the surrogate must fit it
    assert fidelity.per_diagnosis_r2["E875"] is not None and fidelity.per_diagnosis_r2["E875"] > 0.9
    assert fidelity.r2_median is not None and fidelity.cv_r2_median_validation is not None


def test_explain_eval_cli(bundle_path: Path, store_path: Path, ground_truth_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        [
            "explain-eval",
            str(bundle_path),
            str(store_path),
            "--ground-truth",
            str(ground_truth_path),
            "--out",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "| gradient |" in result.stdout and "| random |" in result.stdout and "R² median" in result.stdout
    saved = json.loads(target.read_text())
    assert {m["method"] for m in saved["methods"]} >= {"surrogate", "random"}
    result = runner.invoke(app, ["explain-eval", str(bundle_path), str(store_path)])
    assert result.exit_code == 0 and "ranking metrics skipped" in result.stdout
    result = runner.invoke(
        app, ["explain-eval", str(bundle_path), str(store_path), "--ground-truth", str(tmp_path / "nothing")]
    )
    assert result.exit_code == 2 and "nothing" in result.stderr
