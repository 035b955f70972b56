"""Replicates as derived stores: rotated test folds, nested patient-level label fractions, locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.store import Store
from ecgkt.train.transfer.splits import (
    SplitError,
    derive_pool_store,
    derive_store,
    labelled_subjects,
    primary_labels,
    replicate_plan,
)
from ecgkt.train.transfer.study import StudyConfig, _try_claim, study_units, supervised_epochs


def test_replicate_zero_is_the_stores_own_split_and_test_folds_rotate_without_overlap() -> None:
    first = replicate_plan(20, 0, n_replicates=5)
    assert first.test_folds == (19,) and first.val_folds == (18,) and len(first.train_folds) == 18
    plans = [replicate_plan(20, r, n_replicates=5, test_folds=2) for r in range(5)]
    tests = [f for p in plans for f in p.test_folds]
    assert len(tests) == len(set(tests)) == 10
    for p in plans:
        assert not set(p.val_folds) & set(p.test_folds)
        assert set(p.train_folds) | set(p.val_folds) | set(p.test_folds) == set(range(20))
        assert p.seed == p.replicate


def test_too_many_replicates_for_the_folds_is_an_error() -> None:
    with pytest.raises(SplitError, match="folds"):
        replicate_plan(20, 0, n_replicates=10, test_folds=2)


def test_label_fractions_are_nested_and_take_whole_patients() -> None:
    subjects = np.repeat(np.arange(100), 3)
    small, large = labelled_subjects(subjects, 0.05, 1), labelled_subjects(subjects, 0.2, 1)
    assert small.sum() >= 0.05 * len(subjects) and large.sum() >= 0.2 * len(subjects)
    assert not (small & ~large).any()  # nested
    for mask in (small, large):
        labelled = set(subjects[mask])
        assert all(mask[subjects == s].all() for s in labelled)  # whole patients
    assert labelled_subjects(subjects, 1.0, 1).all()
    assert not np.array_equal(labelled_subjects(subjects, 0.2, 1), labelled_subjects(subjects, 0.2, 2))


def test_derived_store_rotates_the_folds_subsamples_labels_and_recomputes_statistics(
    tiny_store: Path, tmp_path: Path
) -> None:
    base = Store.open(tiny_store)
    plan = replicate_plan(20, 1, n_replicates=2)  # test fold 18, val fold 17
    full = Store.open(derive_store(tiny_store, tmp_path / "full", plan, 1.0))
    assert np.array_equal(full.split_indices("test"), base.split_indices("val"))  # fold 18
    assert set(full.folds[full.split_indices("train")]) == set(plan.train_folds)
    half = Store.open(derive_store(tiny_store, tmp_path / "half", plan, 0.5))
    assert len(half.split_indices("train")) < len(full.split_indices("train"))
    assert set(half.split_indices("train")) <= set(full.split_indices("train"))
    assert np.array_equal(half.split_indices("test"), full.split_indices("test"))
    # statistics from the replicate's training folds, the same for every fraction
    age = base.raw_features()["age"].to_numpy()
    train_rows = np.isin(base.folds, plan.train_folds)
    expected = float(np.median(age[train_rows]))
    spec = {f.name: f for f in half.manifest.features}["age"]
    assert spec.median == pytest.approx(expected)
    assert {f.name: f for f in full.manifest.features}["age"].median == pytest.approx(expected)
    assert (tmp_path / "half" / "signals.npy").is_symlink()
    # deriving again with the same settings is a no-op; the base store is untouched
    derive_store(tiny_store, tmp_path / "half", plan, 0.5)
    assert Store.open(tiny_store).manifest == base.manifest


def test_pool_excludes_the_replicates_test_and_validation_patients(tiny_store: Path, tmp_path: Path) -> None:
    plan = replicate_plan(20, 0, n_replicates=2)
    pool = Store.open(derive_pool_store(tiny_store, tiny_store, tmp_path / "pool", plan))
    base = Store.open(tiny_store)
    test_subjects = set(base.records["subject_id"].to_numpy()[base.split_indices("test")])
    train_subjects = set(pool.records["subject_id"].to_numpy()[pool.split_indices("train")])
    assert not test_subjects & train_subjects
    assert len(pool.split_indices("val")) == len(base.split_indices("val"))


def test_primary_labels_need_enough_positives_in_every_test_fold(tiny_store: Path) -> None:
    plans = [replicate_plan(20, r, n_replicates=2) for r in range(2)]
    loose = primary_labels(tiny_store, plans, 1)
    strict = primary_labels(tiny_store, plans, 1000)
    assert strict == [] and set(loose) <= {"I48", "E11", "R07"} and loose


def test_supervised_epochs_grow_for_small_fractions_only() -> None:
    assert supervised_epochs(8, 6400, 64, 300) == 8
    assert supervised_epochs(8, 320, 64, 300) == 60
    assert supervised_epochs(8, 10, 64, 0) == 8


def test_units_depend_on_their_pretraining_and_teacher() -> None:
    units = {u.key: u for u in study_units(StudyConfig(replicates=2, fractions=[0.2, 1.0]))}
    assert units["je-barlow_f0.2_r1"].depends == ("pretrain-barlow_r1",)
    assert units["regft_f1_r0"].depends == ("pretrain-barlow_r0",)
    assert units["distill_f0.2_r0"].depends == ("multimodal_f0.2_r0",)
    assert len([u for u in units.values() if u.kind == "pretrain"]) == 6


def test_study_config_requires_the_reference_arms() -> None:
    with pytest.raises(ValueError, match="signal"):
        StudyConfig(arms=["je-barlow"])
    with pytest.raises(ValueError, match="teacher"):
        StudyConfig(arms=["signal", "distill"])


def test_a_lock_is_exclusive_and_a_dead_workers_lock_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "u.lock"
    assert _try_claim(lock)
    assert not _try_claim(lock)  # held by this (live) process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    held = json.loads(lock.read_text())
    lock.write_text(json.dumps({**held, "pid": int(dead.stdout)}))
    assert _try_claim(lock)
    assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_records_parquet_of_a_derived_store_marks_unlabelled_records_outside_every_split(
    tiny_store: Path, tmp_path: Path
) -> None:
    plan = replicate_plan(20, 0, n_replicates=1)
    derived = derive_store(tiny_store, tmp_path / "d", plan, 0.3)
    folds = pl.read_parquet(derived / "records.parquet")["fold"].to_numpy()
    assert (folds == 20).any()
    store = Store.open(derived)
    in_split = np.concatenate([store.split_indices(s) for s in ("train", "val", "test")])
    assert not np.isin(np.flatnonzero(folds == 20), in_split).any()


def test_plan_is_fixed_before_runs_but_reporting_options_may_change(tiny_store: Path, tmp_path: Path) -> None:
    from ecgkt.train.transfer.study import StudyError, plan_study

    config = StudyConfig(preset="smoke", replicates=2, fractions=[0.5], min_test_positives=1)
    plan = plan_study(config, tiny_store, tmp_path)
    assert plan["primary_labels"] and (tmp_path / "study_plan.json").exists()
    ceilings = tmp_path / "c.json"
    ceilings.write_text('{"x": 0.8}')
    later = config.model_copy(update={"ceilings": str(ceilings), "ceiling_key": "x", "bootstrap_resamples": 50})
    assert plan_study(later, tiny_store, tmp_path)["config"]["ceilings"] == str(ceilings)
    with pytest.raises(StudyError, match="different plan"):
        plan_study(config.model_copy(update={"fractions": [0.2]}), tiny_store, tmp_path)


def test_report_options_change_without_planning_and_a_bad_ceiling_is_refused_before_training(
    tiny_store: Path, tmp_path: Path
) -> None:
    from ecgkt.train.transfer.report import plan_digest
    from ecgkt.train.transfer.study import StudyError, plan_study, set_report_options

    config = StudyConfig(preset="smoke", replicates=2, fractions=[0.5], min_test_positives=1)
    plan = plan_study(config, tiny_store, tmp_path)
    matched = tmp_path / "matched.json"
    matched.write_text(json.dumps({"study_plan_digest": plan_digest(plan), "c": {"0": 0.7, "1": 0.8}}))
    updated = set_report_options(tmp_path, {"ceilings": str(matched), "ceiling_key": "c"})
    saved = json.loads((tmp_path / "study_plan.json").read_text())
    assert saved["config"]["ceilings"] == str(matched) and saved == updated
    assert saved["primary_labels"] == plan["primary_labels"]  # nothing but the reporting options changed
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"study_plan_digest": "0" * 64, "c": {"0": 0.7}}))
    with pytest.raises(StudyError, match="another study plan"):
        set_report_options(tmp_path, {"ceilings": str(stale), "ceiling_key": "c"})
    with pytest.raises(StudyError, match="another study plan"):  # and a fresh study with it never starts
        plan_study(config.model_copy(update={"ceilings": str(stale), "ceiling_key": "c"}), tiny_store, tmp_path / "n")
    assert not (tmp_path / "n" / "study_plan.json").exists()
    with pytest.raises(StudyError, match="not reporting options"):
        set_report_options(tmp_path, {"fractions": [0.2]})
    assert json.loads((tmp_path / "study_plan.json").read_text()) == saved
