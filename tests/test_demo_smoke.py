"""`ecgkt demo` end to end (slow): synthetic cohort → build → benchmark → bundle, then resume skips all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ecgkt.bundle import load_bundle


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    from ecgkt.demo import run_demo

    torch.set_num_threads(2)
    out = tmp_path / "demo"
    # smoke preset and relaxed lab-label thresholds keep this at ~2 minutes on 2 cores
    tiny_build = {"lab_label_min_positives": 3, "lab_label_min_negatives": 3}
    bench = run_demo(out, patients=300, preset="smoke", build_overrides=tiny_build)
    table = json.loads((bench / "table1.json").read_text())
    assert [row["key"] for row in table["rows"]] == ["signal", "mm-labs", "mm-diag", "je"]
    assert all(
        row[task]["macro_auroc"] is not None
        for row in table["rows"]
        for task in ("diagnoses", "labs")
        if row[task] is not None
    )
    # the cohort is synthetic: Table 1 also shows the ECG-only oracle ceiling on its own test fold
    assert table["ecg_only_ceiling"]["n_test"] == table["cohort"]["n_test"]
    assert table["gap_closed"]["of_ceiling_gap"] is not None
    assert "ECG-only oracle ceiling" in (bench / "table1.md").read_text()
    bundle = load_bundle(bench / "bundle")
    assert bundle.manifest.diagnosis_labels and bundle.manifest.lab_labels
    # h16: the demo ends with a calibrated bundle whose explanation was chosen on validation
    assert bundle.manifest.thresholds_diagnosis is not None and bundle.manifest.temperature_diagnosis is not None
    assert (bench / "bundle" / "explanation_patient.json").is_file()
    stamp = (bench / "finetune" / "metrics.json").stat().st_mtime_ns
    run_demo(out, patients=300, preset="smoke", build_overrides=tiny_build)  # resumes: every step is skipped
    assert (bench / "finetune" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_demo_with_the_pretraining_pool(tmp_path: Path) -> None:
    """`ecgkt demo --pretrain-pool`: the pool is built beside the store, pretraining reads its pairs
    (more than the store's training records, none of a test patient) and the bundle is still made."""
    from ecgkt.demo import run_demo
    from ecgkt.store import Store

    torch.set_num_threads(2)
    out = tmp_path / "demo"
    tiny_build = {"lab_label_min_positives": 3, "lab_label_min_negatives": 3}
    bench = run_demo(out, patients=200, preset="smoke", build_overrides=tiny_build, pretrain_pool=True)
    metrics = json.loads((bench / "pretrain" / "metrics.json").read_text())
    pool_store = Store.open(Path(metrics["pretrain_store"]))
    labelled = Store.open(out / "store")
    assert Path(metrics["pretrain_store"]).parent == bench / "pretrain"
    assert metrics["n_records"]["train"] > len(labelled.split_indices("train"))
    test_subjects = set(labelled.records["subject_id"].to_numpy()[labelled.split_indices("test")].tolist())
    train_subjects = set(pool_store.records["subject_id"].to_numpy()[pool_store.split_indices("train")].tolist())
    assert test_subjects and not test_subjects & train_subjects
    assert "pretrained on the pool" in (bench / "table1.md").read_text()
    assert (bench / "bundle").is_dir()
