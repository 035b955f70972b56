"""The transfer study's matched ECG-only ceiling (benchmarks/transfer_ceiling.py) on a tiny study.

The tiny store plants I48 in the ECG; a fake ground truth gives the oracle that label as a noise-free
parameter (`rhythm_af`) and nothing for E11 (invisible in the ECG), so the oracle must find the one
and not the other. The ceiling must pair with the study's scoring and refuse another plan's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tiny_store import make_fake_ground_truth, make_tiny_store

import transfer_ceiling
from ecgkt.store import Store
from ecgkt.train.transfer.report import _ceiling_over, load_ceiling
from ecgkt.train.transfer.study import StudyConfig, StudyError, plan_study


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ceiling")
    store = make_tiny_store(root / "store", n_records=400)
    run = root / "run"
    plan_study(StudyConfig(preset="smoke", replicates=2, fractions=[1.0], min_test_positives=3), store, run)
    synth = make_fake_ground_truth(store, root / "synth")
    return store, run, synth


def test_oracle_learns_what_the_ecg_parameters_carry_and_plugs_into_the_report(
    tiny_study: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, run, synth = tiny_study
    assert transfer_ceiling.main(["--study", str(run), "--synth", str(synth), "--results", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "transfer_ceiling.json").read_text())
    per_label = result["per_label_auroc"]
    assert per_label["I48"] > 0.95  # the parameter that carries it
    if "E11" in per_label:
        assert per_label["E11"] < 0.75  # invisible in the ECG: no oracle can find it from ECG parameters
    per_replicate = result["macro_auroc_per_replicate"]["ecg_params+demographics"]
    assert set(per_replicate) == {"0", "1"}
    assert (run / "ceiling" / "ecg-oracle_r0.npz").is_file()
    plan = json.loads((run / "study_plan.json").read_text())
    key = "macro_auroc_per_replicate.ecg_params+demographics"
    ceiling = load_ceiling(tmp_path / "transfer_ceiling.json", key, plan)
    assert isinstance(ceiling, dict) and set(ceiling) == {0, 1}
    assert _ceiling_over(ceiling, [0, 1]) == pytest.approx(np.mean(list(per_replicate.values())))
    assert _ceiling_over(ceiling, [0, 5]) is None  # a gap only on replicates that have a ceiling
    assert _ceiling_over(0.8, [3]) == 0.8
    other = {**plan, "primary_labels": plan["primary_labels"][:-1]}
    with pytest.raises(StudyError, match="another study plan"):
        load_ceiling(tmp_path / "transfer_ceiling.json", key, other)
    # the second run reuses the cached oracle predictions and gives the same numbers
    assert transfer_ceiling.main(["--study", str(run), "--synth", str(synth), "--results", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "transfer_ceiling.json").read_text())
    assert again["macro_auroc_per_replicate"] == result["macro_auroc_per_replicate"]
    # a damaged cache entry is recomputed, not trusted and not a traceback
    (run / "ceiling" / "ecg-oracle_r0.npz").write_bytes(b"not an npz")
    assert transfer_ceiling.main(["--study", str(run), "--synth", str(synth), "--results", str(tmp_path)]) == 0
    repaired = json.loads((tmp_path / "transfer_ceiling.json").read_text())
    assert repaired["macro_auroc_per_replicate"] == result["macro_auroc_per_replicate"]


def test_missing_ground_truth_is_a_clear_error_naming_the_file(
    tiny_study: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run, synth = tiny_study
    assert transfer_ceiling.main(["--study", str(run), "--synth", str(tmp_path), "--results", str(tmp_path)]) == 2
    assert "records.parquet: not found" in capsys.readouterr().err
    partial = tmp_path / "partial"
    (partial / "ground_truth").mkdir(parents=True)
    pl.read_parquet(synth / "ground_truth" / "records.parquet").head(10).write_parquet(
        partial / "ground_truth" / "records.parquet"
    )
    assert transfer_ceiling.main(["--study", str(run), "--synth", str(partial), "--results", str(tmp_path)]) == 2
    assert "have no ground-truth row" in capsys.readouterr().err
    assert not (tmp_path / "transfer_ceiling.json").exists()


def test_store_ceiling_scores_the_stores_own_test_split_on_table1s_terms(
    tiny_study: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from ecgkt.evaluate.metrics import masked_auroc_per_label

    store, _, synth = tiny_study
    assert transfer_ceiling.main(["--store", str(store), "--synth", str(synth)]) == 0
    printed = json.loads(capsys.readouterr().out)
    opened = Store.open(store)
    assert printed["n_test"] == len(opened.split_indices("test"))
    # every diagnosis label with both classes in the test split counts, as in Table 1: noise labels
    # pull the macro towards 0.5, the planted one is found
    targets = opened.diagnosis_targets()
    test = opened.split_indices("test")
    defined = np.isfinite(masked_auroc_per_label(targets[test], np.zeros_like(targets[test])))
    assert 0.5 < printed["macro_auroc"] < 1.0 and defined.sum() >= 2


def test_store_ceiling_is_reused_while_its_inputs_are_unchanged(
    tiny_study: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from ecgkt.evaluate import ceiling as module

    store, _, synth = tiny_study
    cohort = tmp_path / "cohort"
    shutil.copytree(synth, cohort)
    cache = tmp_path / "ecg_only_ceiling.json"
    first = module.store_ceiling_cached(store, cohort, cache)
    fits: list[int] = []
    original = module.store_ceiling
    monkeypatch.setattr(module, "store_ceiling", lambda *a: fits.append(1) or original(*a))
    assert module.store_ceiling_cached(store, cohort, cache) == first and not fits  # reused
    cache.write_text("{not json")
    assert module.store_ceiling_cached(store, cohort, cache) == first and len(fits) == 1  # damaged: refit
    truth = cohort / module.GROUND_TRUTH_RECORDS
    frame = pl.read_parquet(truth)
    frame.with_columns(pl.col("rhythm_af") * 0.0).write_parquet(truth)  # other ground truth: refit
    changed = module.store_ceiling_cached(store, cohort, cache)
    assert len(fits) == 2 and changed["macro_auroc"] < first["macro_auroc"]
    with pytest.raises(module.CeilingError, match="not found"):
        module.store_ceiling_cached(store, tmp_path / "nothing", cache)
