"""The pretraining pool: every ECG with tabular data in its window, as an ordinary store + sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.pipeline import build_store
from ecgkt.cohort.pretrain_pool import PSEUDO_STAY_ID_BASE, build_pretrain_pool, load_pool
from ecgkt.mimic.layout import MimicFolders
from ecgkt.store import Store
from ecgkt.synth.cohort import generate_cohort


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pool") / "synth"
    generate_cohort(root, 40, 5, workers=1, show_progress=False)
    folders = MimicFolders.from_synthetic_root(root)
    config = BuildConfig(workers=1, n_folds=5)
    labelled = build_store(folders, root.parent / "store", config)
    pool = build_pretrain_pool(folders, root.parent / "pool", config, labelled_store=labelled)
    return labelled, pool


def test_pool_holds_the_labelled_records_and_more(stores: tuple[Path, Path]) -> None:
    labelled_path, pool_path = stores
    labelled, pool = Store.open(labelled_path), Store.open(pool_path)
    side = load_pool(pool_path)
    assert side.height == len(pool) and side["row"].to_list() == list(range(len(pool)))
    assert len(pool) > len(labelled)
    in_window = set(side.filter(pl.col("kind") == "ed_window")["study_id"].to_list())
    assert in_window == set(labelled.records["study_id"].to_list())
    assert {"in_stay", "outside"} & set(side["kind"].to_list())
    # the labelled records carry the same tabular features in both stores
    lab = labelled.raw_features().with_columns(labelled.records["study_id"])
    pooled = pool.raw_features().with_columns(pool.records["study_id"]).filter(
        pl.col("study_id").is_in(list(in_window)))
    joined = lab.join(pooled, on="study_id", suffix="_pool")
    column = next(c for c in lab.columns if c.startswith("Potassium"))
    a, b = joined[column].to_numpy(), joined[f"{column}_pool"].to_numpy()
    assert np.allclose(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1))


def test_pool_sidecar_flags_tabular_data_and_labelled_folds(stores: tuple[Path, Path]) -> None:
    labelled_path, pool_path = stores
    side = load_pool(pool_path)
    assert side.filter(pl.col("kind") == "ed_window")["has_tabular"].mean() > 0.8
    assert not side.filter(pl.col("kind") != "ed_window")["has_tabular"].all()  # some have nothing nearby
    folds = dict(Store.open(labelled_path).records.select("subject_id", "fold").unique("subject_id").iter_rows())
    for subject, fold in side.select("subject_id", "labelled_fold").iter_rows():
        assert fold == folds.get(subject, -1)
    stays = Store.open(pool_path).records.join(side, on="study_id")
    pseudo = stays.filter(pl.col("kind") != "ed_window")["stay_id"]
    assert (pseudo >= PSEUDO_STAY_ID_BASE).all()


def test_load_pool_refuses_a_plain_store(stores: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="not a pretraining pool"):
        load_pool(stores[0])


def test_cli_builds_the_pool_and_refuses_an_unknown_outlier_rule(stores: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgkt.cli import app

    root = stores[0].parent / "synth"
    runner = CliRunner()
    bad = runner.invoke(app, ["build", "--synthetic", str(root), "--out", str(tmp_path / "x"),
                              "--lab-outlier-rule", "bogus", "--quiet"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "invalid option" in bad.output
    ok = runner.invoke(app, ["build", "--synthetic", str(root), "--out", str(tmp_path / "pool"), "--pretrain-pool",
                             "--labelled-store", str(stores[0]), "--workers", "1", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert load_pool(tmp_path / "pool").height == len(Store.open(stores[1]))
