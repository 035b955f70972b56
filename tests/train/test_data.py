"""Data module: seeded crops per epoch, 4-window evaluation stacks, memmap access, masking of rows."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ecgkt.config import RunConfig
from ecgkt.store import Store
from ecgkt.train.data import DataError, EpochCropSampler, StoreDataModule


def test_sampler_is_seeded_by_epoch() -> None:
    sampler = EpochCropSampler(50, max_start=750, seed=3)
    first = list(sampler)
    assert list(sampler) == first  # same epoch → same order and crops (resume-safe)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    assert sorted(p for p, _ in second) == list(range(50))
    assert all(0 <= start <= 750 for _, start in first + second)
    assert list(EpochCropSampler(50, 750, seed=4)) != first


def test_training_items_are_crops_at_the_sampler_offset(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="diagnoses")
    train = dm.dataset("train")
    item = train[(3, 120)]
    row = int(train.rows[3])
    expected = Store.open(tiny_store).signals[row, :, 120:370]
    assert item["x"].shape == (12, 250)
    np.testing.assert_array_equal(item["x"].numpy(), expected)
    assert int(item["row"]) == row


def test_evaluation_items_stack_four_consecutive_windows(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="labs", tabular_groups=("routine",))
    test = dm.dataset("test")
    item = test[0]
    record = Store.open(tiny_store).signals[int(test.rows[0])]
    assert item["x"].shape == (4, 12, 250)
    for w in range(4):
        np.testing.assert_array_equal(item["x"][w].numpy(), record[:, 250 * w : 250 * (w + 1)])
    assert item["numeric"].shape == (dm.tabular_shape[0],)
    assert item["categorical"].dtype.is_floating_point is False


def test_records_without_any_known_target_are_dropped(tiny_store: Path, smoke_config: RunConfig) -> None:
    store = Store.open(tiny_store)
    labs = store.lab_targets()
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="labs")
    rows = dm.split_rows("train")
    all_train = store.split_indices("train")
    unknown = all_train[np.all(np.isnan(labs[all_train]), axis=1)]
    assert len(unknown) > 0
    assert set(rows) == set(all_train) - set(unknown)
    pretrain = StoreDataModule(tiny_store, smoke_config.data, seed=0, target=None, tabular_groups=("routine", "lab"))
    assert len(pretrain.dataset("train")) == len(all_train)


def test_dataset_pickles_without_signal_data(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="diagnoses")
    train = dm.dataset("train")
    _ = train[(0, 0)]  # opens the memory map
    assert isinstance(train.signals, np.memmap)
    payload = pickle.dumps(train)
    assert len(payload) < 100_000  # the 160×12×1000 float32 array (7.7 MB) is not inside
    clone = pickle.loads(payload)
    np.testing.assert_array_equal(clone[(0, 5)]["x"].numpy(), train[(0, 5)]["x"].numpy())


def test_clear_errors_for_unusable_inputs(tiny_store: Path, smoke_config: RunConfig) -> None:
    big_batch = smoke_config.data.model_copy(update={"batch_size": 1000})
    with pytest.raises(DataError, match=r"fewer than data\.batch_size=1000"):
        StoreDataModule(tiny_store, big_batch, seed=0, target="diagnoses").setup("fit")
    long_windows = smoke_config.data.model_copy(update={"n_eval_windows": 5})
    with pytest.raises(DataError, match="records have 1000 samples"):
        StoreDataModule(tiny_store, long_windows, seed=0, target="diagnoses")
