"""Integration: `ecgkt synth` output → builder → Store.open, checked against the generator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.pipeline import build_store
from ecgkt.mimic.layout import MimicFolders
from ecgkt.store import Store

cohort = pytest.importorskip("ecgkt.synth.cohort")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "cohort"
    cohort.generate_cohort(root, n_patients=30, seed=11, workers=1, show_progress=False)
    return root


@pytest.fixture(scope="session")
def synthetic_store(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = BuildConfig(workers=1, lab_label_min_positives=1, lab_label_min_negatives=1, min_label_count=3)
    return build_store(
        MimicFolders.from_synthetic_root(synthetic_root), tmp_path_factory.mktemp("stores") / "synthetic", config
    )


def test_store_opens_with_labels_features_and_folds(synthetic_store: Path) -> None:
    store = Store.open(synthetic_store)
    assert len(store) > 30
    assert store.signals.shape == (len(store), 12, 1000)
    assert np.isfinite(np.asarray(store.signals)).all()
    assert np.abs(np.asarray(store.signals)).max() <= 3.0
    assert len(store.manifest.diagnosis_labels) > 0
    targets = store.diagnosis_targets()
    assert set(np.unique(targets).tolist()) <= {0.0, 1.0}
    assert (targets.sum(axis=0) >= 3).all()
    labs = store.lab_targets()
    assert labs.shape == (len(store), len(store.manifest.lab_labels))
    assert store.records.group_by("subject_id").agg(pl.col("fold").n_unique())["fold"].max() == 1
    tabular = store.tabular(observed_mask=True)
    assert np.isfinite(tabular.numeric).all()
    observed = {f.name: f.observed_fraction for f in store.manifest.features}
    assert observed["age"] == 1.0 and observed["heartrate__mean"] > 0.5 and observed["Potassium__mean"] > 0.1


def test_matching_agrees_with_the_generator_ground_truth(synthetic_root: Path, synthetic_store: Path) -> None:
    truth = pl.read_parquet(synthetic_root / "ground_truth" / "records.parquet")
    store = Store.open(synthetic_store)
    report = json.loads((synthetic_store / "build_report.json").read_text())
    in_window = truth.filter(pl.col("kind") == "window")
    assert report["counts"]["ECGs matched to an ED stay"] == in_window.height
    joined = store.records.join(in_window.select("study_id", pl.col("stay_id").alias("true_stay")), on="study_id")
    assert joined.height == len(store)  # every stored ECG is an in-window ECG of the generator
    assert (joined["stay_id"] == joined["true_stay"]).all()


def test_ages_and_gender_agree_with_ground_truth(synthetic_root: Path, synthetic_store: Path) -> None:
    visits = pl.read_parquet(synthetic_root / "ground_truth" / "visits.parquet").select("stay_id", "age", "gender")
    records = Store.open(synthetic_store).records.join(visits, on="stay_id", suffix="_true")
    assert (records["gender"] == records["gender_true"]).all()
    error = (records["age"] - records["age_true"]).abs()
    # MIMIC only gives anchor_age in anchor_year, so age at the ECG is known to about a year
    assert error.max() <= 1.5 and error.mean() < 0.75
