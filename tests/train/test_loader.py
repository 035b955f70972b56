"""Batch-level loading: same batches as the per-sample path, independent of workers, DDP shards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ecgkt.config import RunConfig
from ecgkt.store import Store
from ecgkt.train.data import (
    SHARED_MEMORY_MIN_BYTES,
    BatchLoader,
    DataError,
    EcgWindowDataset,
    EpochCropBatchSampler,
    EpochCropSampler,
    EvalBatchSampler,
    StoreDataModule,
)
from ecgkt.train.modules import SupervisedModule

Batches = list[dict[str, torch.Tensor]]


def _module(store: Path, config: RunConfig, **data: int) -> StoreDataModule:
    settings = config.data.model_copy(update=data)
    return StoreDataModule(store, settings, seed=7, target="labs", tabular_groups=("routine",))


def _epoch(loader: BatchLoader, epoch: int) -> Batches:
    sampler = loader.sampler
    assert isinstance(sampler, EpochCropBatchSampler)
    sampler.set_epoch(epoch)
    return list(loader)


def _assert_same(a: Batches, b: Batches) -> None:
    assert len(a) == len(b)
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        for key in left:
            torch.testing.assert_close(left[key], right[key], rtol=0, atol=0, equal_nan=True, msg=key)


def test_batches_equal_the_per_sample_path(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = _module(tiny_store, smoke_config, batch_size=10)
    train = dm.dataset("train")
    old_sampler = EpochCropSampler(len(train), 750, seed=7)
    old = DataLoader(train, batch_size=10, sampler=old_sampler, drop_last=True)
    new = dm.train_dataloader()
    for epoch in (0, 3):
        old_sampler.set_epoch(epoch)
        _assert_same(list(old), _epoch(new, epoch))
    old_eval = DataLoader(dm.dataset("val"), batch_size=smoke_config.data.eval_batch_size, shuffle=False)
    _assert_same(list(old_eval), list(dm.eval_dataloader("val")))


def test_two_workers_give_the_same_batches(tiny_store: Path, smoke_config: RunConfig) -> None:
    in_main, in_workers = (
        _module(tiny_store, smoke_config, num_workers=0),
        _module(tiny_store, smoke_config, num_workers=2),
    )
    main, workers = in_main.train_dataloader(), in_workers.train_dataloader()
    assert workers.persistent_workers and not main.persistent_workers
    assert workers.batch_size is None and not workers.pin_batches  # ready batches; no pinning on CPU
    for epoch in (0, 1):
        _assert_same(_epoch(main, epoch), _epoch(workers, epoch))
    assert _epoch(main, 0)[0]["x"].shape == (smoke_config.data.batch_size, 12, smoke_config.data.window_samples)
    # evaluation stacks (32 records × 4 windows = 1.5 MB) leave the workers through shared memory
    eval_main, eval_workers = list(in_main.eval_dataloader("test")), list(in_workers.eval_dataloader("test"))
    assert eval_main[0]["x"].numpy().nbytes >= SHARED_MEMORY_MIN_BYTES
    _assert_same(eval_main, eval_workers)


def test_each_record_once_per_epoch_and_drop_last(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = _module(tiny_store, smoke_config, batch_size=10)
    n_train = len(dm.dataset("train"))
    assert n_train % 10 != 0  # so that dropping the last partial batch is observable
    batches = _epoch(dm.train_dataloader(), 2)
    assert [len(b["x"]) for b in batches] == [10] * (n_train // 10)
    rows = torch.cat([b["row"] for b in batches]).tolist()
    assert len(set(rows)) == len(rows) == n_train - n_train % 10
    assert set(rows) <= set(dm.dataset("train").rows.tolist())
    full = EpochCropBatchSampler(n_train, 750, 10, seed=7, drop_last=False)
    positions = np.concatenate([b.positions for b in full])
    assert sorted(positions.tolist()) == list(range(n_train))
    assert len(full) == len(list(full)) == n_train // 10 + 1


def test_crops_are_read_at_the_sampler_offsets(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = _module(tiny_store, smoke_config)
    train: EcgWindowDataset = dm.dataset("train")
    sampler = EpochCropBatchSampler(len(train), 750, 8, seed=1)
    index = next(iter(sampler))
    batch = train[index]
    signals = np.load(tiny_store / "signals.npy", mmap_mode="r")
    for i, (position, start) in enumerate(index.pairs()):
        row = int(train.rows[position])
        assert int(batch["row"][i]) == row
        np.testing.assert_array_equal(batch["x"][i], signals[row, :, start : start + 250])
        np.testing.assert_array_equal(batch["numeric"][i], train.tabular.numeric[position])  # type: ignore[union-attr]


def test_ranks_get_disjoint_equal_shards() -> None:
    single = [b.positions.tolist() for b in EpochCropBatchSampler(107, 750, 10, seed=5)]
    ranks = [EpochCropBatchSampler(107, 750, 10, seed=5, num_replicas=2, rank=r) for r in (0, 1)]
    shards = [[b.positions.tolist() for b in sampler] for sampler in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == 5  # 10 whole batches, 5 steps each
    assert shards[0] == single[0:10:2] and shards[1] == single[1:10:2]
    seen = [p for shard in shards for batch in shard for p in batch]
    assert len(seen) == len(set(seen)) == 100
    evaluation = [[p for b in EvalBatchSampler(11, 4, num_replicas=3, rank=r) for p in b.positions] for r in range(3)]
    assert [len(block) for block in evaluation] == [4, 4, 4]  # equal counts, so predictions can be all-gathered
    assert sorted({p for block in evaluation for p in block}) == list(range(11))
    with pytest.raises(ValueError, match=r"rank 2 is not in 0\.\.1"):
        EvalBatchSampler(11, 4, num_replicas=2, rank=2)


def test_data_module_shards_only_when_lightning_does_not(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = _module(tiny_store, smoke_config)
    straight = _epoch(dm.train_dataloader(), 0)
    dm.trainer = SimpleNamespace(  # type: ignore[assignment]
        world_size=2,
        global_rank=1,
        current_epoch=0,
        _accelerator_connector=SimpleNamespace(use_distributed_sampler=False),
    )
    rank1 = _epoch(dm.train_dataloader(), 0)
    _assert_same(rank1, straight[1 : 2 * (len(straight) // 2) : 2])
    val = [b["row"] for b in dm.val_dataloader()]
    assert sum(len(r) for r in val) == -(-len(dm.dataset("val")) // 2)
    assert sum(len(b["row"]) for b in dm.eval_dataloader("val")) == len(dm.dataset("val"))  # scoring: all
    dm.trainer._accelerator_connector.use_distributed_sampler = True  # type: ignore[union-attr]
    with pytest.raises(DataError, match="use_distributed_sampler=False"):
        dm.train_dataloader()


class _RowRecorder(L.Callback):
    """Writes the training rows each rank saw to rows_<rank>.json (ranks run in other processes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.rows.extend(batch["row"].tolist())

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        (self.folder / f"rows_{trainer.global_rank}.json").write_text(json.dumps(self.rows))


@pytest.mark.slow
def test_ddp_ranks_train_on_disjoint_records(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="diagnoses")
    module = SupervisedModule(
        encoder=smoke_config.encoder.model_dump(),
        head=smoke_config.baseline.head.model_dump(),
        n_labels=dm.n_labels,
        optim=smoke_config.baseline.optim.model_copy(update={"max_epochs": 1}).model_dump(),
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=1,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[_RowRecorder(tmp_path)],
    )
    trainer.fit(module, datamodule=dm)  # validation all-gathers equal-sized per-rank predictions
    ranks = [set(json.loads((tmp_path / f"rows_{rank}.json").read_text())) for rank in (0, 1)]
    n_train, batch = len(dm.dataset("train")), smoke_config.data.batch_size
    steps_per_rank = n_train // batch // 2
    assert len(ranks[0]) == len(ranks[1]) == steps_per_rank * batch
    assert not ranks[0] & ranks[1]


def test_evaluation_batches_prefetch_exactly_their_records(
    tiny_store: Path, smoke_config: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """window_batch asks the kernel for the byte ranges of its own records (whole rows of signals.npy,
    consecutive rows merged into one request) and nothing else: cold evaluation reads only them."""
    dataset = EcgWindowDataset(
        Store.open(tiny_store).path / "signals.npy", np.array([9, 5, 30, 6, 7, 12]), window=250, n_windows=4
    )
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr("os.posix_fadvise", lambda fd, offset, length, advice: calls.append((offset, length, advice)))
    positions = np.array([4, 0, 1, 2, 3], dtype=np.int64)  # rows 7, 9, 5, 30, 6
    batch = dataset.window_batch(positions)

    signals = np.load(dataset.signals_path, mmap_mode="r")
    rows = sorted(dataset.rows[positions].tolist())
    expected_bytes = b"".join(np.ascontiguousarray(signals[row]).tobytes() for row in rows)
    raw = dataset.signals_path.read_bytes()
    assert {advice for _, _, advice in calls} == {os.POSIX_FADV_WILLNEED}
    assert b"".join(raw[offset : offset + length] for offset, length, _ in sorted(calls)) == expected_bytes
    assert len(calls) == 3  # rows 5-7 in one request, 9 and 30 on their own
    assert batch["x"].shape == (len(positions), 4, 12, 250)


def test_evaluation_batches_without_fadvise(
    tiny_store: Path, smoke_config: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Platforms without posix_fadvise (macOS) read the same batches, just without the hint."""
    dataset = _module(tiny_store, smoke_config).dataset("val")
    positions = np.arange(6, dtype=np.int64)
    with_hint = dataset.window_batch(positions)["x"]
    monkeypatch.delattr("os.posix_fadvise")
    np.testing.assert_array_equal(dataset.window_batch(positions)["x"], with_hint)
