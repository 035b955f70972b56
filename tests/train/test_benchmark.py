"""`ecgkt benchmark` and `ecgkt ablation` end to end on a tiny store (smoke preset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgkt.bundle import load_bundle
from ecgkt.cli import app
from ecgkt.train.evaluation import load_predictions

runner = CliRunner()
STAGES = ("pretrain", "finetune", "labs", "baseline")


@pytest.fixture(scope="module")
def benchmark_dir(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench") / "bench"
    one_epoch = out.parent / "one-epoch.yaml"
    one_epoch.write_text("preset: smoke\n" + "".join(f"{stage}:\n  optim:\n    max_epochs: 1\n" for stage in STAGES))
    result = runner.invoke(
        app, ["benchmark", "--store", str(tiny_store), "--out", str(out), "--config", str(one_epoch)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "bundle" / "explanation_patient.json").is_file()  # h16: benchmark ends calibrated
    assert "Bundle calibrated; explanation shown: cooccurrence" in result.output
    return out


def test_table1_outputs(benchmark_dir: Path) -> None:
    table = json.loads((benchmark_dir / "table1.json").read_text())
    rows = {row["key"]: row for row in table["rows"]}
    assert list(rows) == ["signal", "mm-labs", "mm-diag", "je"]
    assert rows["signal"]["labs"] is None and rows["mm-labs"]["diagnoses"] is None
    assert rows["je"]["inference"] == {"routine": False, "lab": False, "diagnoses": False}
    assert rows["mm-diag"]["inference"] == {"routine": True, "lab": True, "diagnoses": False}
    assert rows["mm-labs"]["training"] == {"routine": True, "lab": True, "diagnoses": False}
    assert rows["je"]["paper"] == {"diagnoses": 0.795, "labs": 0.701}
    for row in rows.values():
        for task in ("diagnoses", "labs"):
            score = row[task]
            if score is not None:
                assert score["ci_low"] <= score["macro_auroc"] <= score["ci_high"]
    comparisons = {item["comparison"]: item for item in table["comparisons"]}
    je_vs_signal = comparisons["JE + Reconstruction − Signal-Only"]
    expected = rows["je"]["diagnoses"]["macro_auroc"] - rows["signal"]["diagnoses"]["macro_auroc"]
    assert je_vs_signal["delta"] == pytest.approx(expected, abs=1e-9)
    assert je_vs_signal["ci_low"] <= je_vs_signal["delta"] <= je_vs_signal["ci_high"]
    assert len(comparisons) == 3
    markdown = (benchmark_dir / "table1.md").read_text()
    assert "| JE + Reconstruction |" in markdown and "●" in markdown and "○" in markdown
    assert "Paired differences" in markdown
    for name in ("roc_diagnoses.png", "roc_labs.png", "learning_curves.png"):
        assert (benchmark_dir / "plots" / name).stat().st_size > 1000
    assert sorted(p.name for p in (benchmark_dir / "per_label").iterdir()) == [
        "je_diagnoses.csv",
        "je_labs.csv",
        "mm-diag_diagnoses.csv",
        "mm-labs_labs.csv",
        "signal_diagnoses.csv",
    ]


def test_one_encoder_serves_both_heads(benchmark_dir: Path) -> None:
    """With the stage-3 encoder frozen, the JE diagnosis score is exactly stage 2's."""
    je = json.loads((benchmark_dir / "table1.json").read_text())["rows"][3]["diagnoses"]
    finetune = json.loads((benchmark_dir / "finetune" / "metrics.json").read_text())["test"]
    assert je["macro_auroc"] == pytest.approx(finetune["macro_auroc"], abs=1e-6)


def test_bundle_reproduces_the_benchmark_predictions(benchmark_dir: Path, tiny_store: Path) -> None:
    from ecgkt.config import load_config
    from ecgkt.train.data import StoreDataModule

    bundle = load_bundle(benchmark_dir / "bundle")
    assert bundle.manifest.diagnosis_labels == ["I48", "E11", "R07"]
    assert bundle.manifest.diagnosis_titles["I48"] == "Atrial fibrillation and flutter"
    assert bundle.manifest.lab_labels == ["Potassium_high", "Glucose_high"]
    assert set(bundle.manifest.validation_auroc_lab) == {"Potassium_high", "Glucose_high"}
    assert bundle.manifest.preprocessing.leads[:3] == ["I", "II", "III"]
    expected, _, _ = load_predictions(benchmark_dir / "je" / "predictions_labs_test.npz")
    dm = StoreDataModule(tiny_store, load_config("smoke").data, seed=0, target="labs")
    with torch.no_grad():
        probs = torch.cat([bundle.model.predict_windows(batch["x"])[1] for batch in dm.eval_dataloader("test")])
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-6)


def test_ablation_reuses_the_benchmark_runs(benchmark_dir: Path, tiny_store: Path) -> None:
    before = (benchmark_dir / "finetune" / "metrics.json").stat().st_mtime_ns
    result = runner.invoke(
        app,
        [
            "ablation",
            "--store",
            str(tiny_store),
            "--out",
            str(benchmark_dir),
            "--config",
            str(benchmark_dir.parent / "one-epoch.yaml"),
            "--resume",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (benchmark_dir / "finetune" / "metrics.json").stat().st_mtime_ns == before  # reused, not retrained
    rows = json.loads((benchmark_dir / "ablation.json").read_text())["rows"]
    assert [(r["objective"], r["freeze_layers"]) for r in rows] == [
        ("none", 0),
        ("barlow_twins", 1),
        ("barlow_twins", 0),
        ("barlow_twins", 2),
    ]
    assert rows[1]["folders"]["finetune"].endswith("/finetune")
    assert rows[0]["folders"]["finetune"].endswith("/baseline-signal")
    assert (benchmark_dir / "ablation" / "finetune-barlow_twins-freeze2").is_dir()
    markdown = (benchmark_dir / "ablation.md").read_text()
    assert markdown.count("\n| ") == 5  # header + 4 variants
    assert "(reference)" in markdown and rows[1]["diagnoses_vs_none"]["delta"] is not None


def test_table1_reports_the_ecg_only_ceiling_on_its_own_test_records(
    benchmark_dir: Path, tiny_store: Path, tmp_path: Path
) -> None:
    from tiny_store import make_fake_ground_truth

    from ecgkt.evaluate.ceiling import CeilingError
    from ecgkt.train.table1 import run_benchmark

    cohort = make_fake_ground_truth(tiny_store, tmp_path / "cohort")
    config = tmp_path / "one-epoch.yaml"
    config.write_text((benchmark_dir.parent / "one-epoch.yaml").read_text())
    result = runner.invoke(
        app,
        ["benchmark", "--store", str(tiny_store), "--out", str(benchmark_dir), "--config", str(config), "--resume",
         "--ceiling-cohort", str(cohort)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads((benchmark_dir / "table1.json").read_text())
    gaps = table["gap_closed"]
    assert table["ecg_only_ceiling"]["n_test"] == table["cohort"]["n_test"]
    assert 0.5 < gaps["ecg_only_ceiling"] <= 1.0
    rows = {row["key"]: row["diagnoses"]["macro_auroc"] for row in table["rows"] if row["diagnoses"]}
    expected = (rows["je"] - rows["signal"]) / (gaps["ecg_only_ceiling"] - rows["signal"])
    assert gaps["of_ceiling_gap"] == pytest.approx(expected)
    assert "ECG-only oracle ceiling on these test records and labels" in (benchmark_dir / "table1.md").read_text()
    # a cohort without ground truth is refused before anything is trained
    from ecgkt.config import load_config

    with pytest.raises(CeilingError, match=r"records\.parquet: not found"):
        run_benchmark(load_config("smoke"), tiny_store, tmp_path / "fresh", ceiling_cohort=tmp_path / "nothing")
    assert not (tmp_path / "fresh").exists()
