"""`pretrain.pool` / `--pretrain-pool`: the deployable route of the transfer study pretrains on a pool.

The pool's records of the labelled store's test patients must never be seen, its validation patients
become the validation split, a pool with other preprocessing is refused before any training, and the
benchmark and demo CLI carry the option through to the pretraining stage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_store import make_tiny_store
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.config import load_config
from ecgkt.store import MANIFEST_FILE, Store
from ecgkt.train.stages import StageError, run_pretrain
from ecgkt.train.transfer.splits import SplitError, check_pool, pool_for_store


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A larger store with other records (seed 1) standing in for the pool export."""
    return make_tiny_store(tmp_path_factory.mktemp("pool") / "pool", n_records=240, seed=1)


def _subjects(store: Store, split: str) -> set[int]:
    return set(store.records["subject_id"].to_numpy()[store.split_indices(split)].tolist())


def test_pool_keeps_out_the_stores_test_patients(tiny_store: Path, pool: Path, tmp_path: Path) -> None:
    derived = Store.open(pool_for_store(pool, tiny_store, tmp_path / "pool-store", seed=0))
    labelled = Store.open(tiny_store)
    assert _subjects(derived, "train").isdisjoint(_subjects(labelled, "test"))
    assert _subjects(derived, "train").isdisjoint(_subjects(labelled, "val"))
    assert _subjects(derived, "val") <= _subjects(labelled, "val")
    pool_subjects = Store.open(pool).records["subject_id"].to_numpy()
    held_out = list(_subjects(labelled, "test") | _subjects(labelled, "val"))
    expected_train = int((~np.isin(pool_subjects, held_out)).sum())
    assert len(derived.split_indices("train")) == expected_train > len(labelled.split_indices("train"))


def test_a_pool_with_other_preprocessing_is_refused(tiny_store: Path, pool: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(pool, other)
    manifest = json.loads((other / MANIFEST_FILE).read_text())
    manifest["preprocessing"]["clip_mv"] = float(manifest["preprocessing"]["clip_mv"]) * 2
    (other / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(SplitError, match="preprocessing"):
        check_pool(other, tiny_store)
    with pytest.raises(SplitError, match=r"no manifest\.json"):
        check_pool(tmp_path / "missing", tiny_store)


def test_pretraining_runs_on_the_pool(tiny_store: Path, pool: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = load_config("smoke", overrides={"pretrain": {"pool": str(pool)}})
    result = run_pretrain(config, tiny_store, tmp_path / "pretrain")
    derived = tmp_path / "pretrain" / "pool-store"
    assert result.metrics["pretrain_store"] == str(derived)
    assert result.metrics["n_records"]["train"] == len(Store.open(derived).split_indices("train"))
    # a pool that cannot serve this store stops the stage with the pool named
    bad = load_config("smoke", overrides={"pretrain": {"pool": str(tmp_path / "nowhere")}})
    with pytest.raises(StageError, match="nowhere"):
        run_pretrain(bad, tiny_store, tmp_path / "pretrain-bad")


def test_benchmark_cli_refuses_a_bad_pool_before_training(tiny_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        app,
        ["benchmark", "--store", str(tiny_store), "--out", str(out), "--preset", "smoke",
         "--pretrain-pool", str(tmp_path / "no-pool")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "no-pool" in result.output and "Traceback" not in result.output
    assert not (out / "pretrain").exists()


def test_demo_refuses_a_missing_config_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--config", str(tmp_path / "route.yaml")])
    assert result.exit_code == 2, result.output
    assert "route.yaml" in result.output and "Traceback" not in result.output
    assert not out.exists()
