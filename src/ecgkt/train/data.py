"""Datasets and the Lightning data module on a dataset store.

Training sees one random 2.5 s crop (250 samples) per record per epoch; evaluation sees the 4
non-overlapping 2.5 s windows of each 10 s record, whose sigmoid outputs the modules average.

Why the crop offsets come from the sampler: the sampler is seeded by (seed, epoch), so the order
*and* the crops of epoch e are the same whether the run went straight through or was killed and
resumed from `last.ckpt` (Lightning calls `sampler.set_epoch(e)` each epoch). Global RNG state would
not survive a restart. The sampler runs in the main process, so the batches do not depend on
`num_workers` either.

Why the loaders move whole batches of NumPy arrays: a DataLoader worker that returns one sample at a
time pickles a dict per sample across the process boundary and collates in the main process; on 2
cores that made 2 workers ~10× slower than none (benchmarks/results/loader.md). Here the sampler
yields one `CropBatchIndex` / `WindowBatchIndex` per batch, the DataLoader runs with
`batch_size=None`, and the dataset reads the whole batch from the memory map into one array (rows
visited in sorted order for locality). How a batch leaves a worker depends on its size: a torch
tensor is moved to a new shared-memory segment whose file descriptor is passed on its own (a fixed
cost per tensor, then no copy), a NumPy array is copied through the worker's pipe inside the one
pickled message. Training batches (384 KB of crops) were 2–3× faster as NumPy, evaluation batches
(6 MB of window stacks) 4× cheaper for the main process as shared memory, hence
`SHARED_MEMORY_MIN_BYTES`. `BatchLoader` turns whatever arrives into tensors without copying.

Why the data module shards its own batches under DDP: Lightning's automatic `DistributedSampler`
replacement would wrap a batch sampler and pad it by repeating batches, so ranks would not hold
disjoint shards. The stages' Trainer is built with `use_distributed_sampler=False`, and
`StoreDataModule` gives each rank every `world_size`-th batch of the same global epoch order
(training) or one contiguous block of records (evaluation).

Signals are read from the store's memory map (never the whole array); the map is reopened lazily in
each DataLoader worker, so nothing large is pickled to workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import lightning as L
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset, Sampler

from ecgkt.config import DataConfig
from ecgkt.errors import UserError
from ecgkt.store import FeatureGroup, Split, Store

TargetName = Literal["diagnoses", "labs"]
# Arrays at least this large leave a DataLoader worker as shared-memory tensors, smaller ones inside
# the pickled message (measured crossover between a 384 KB and a 6 MB batch; module docstring).
SHARED_MEMORY_MIN_BYTES = 1 << 20
Batch = dict[str, torch.Tensor]
ArrayBatch = dict[str, NDArray[Any]]
N_LEADS = 12


class DataError(UserError, ValueError):
    """The store cannot feed the requested training run (too few records, no labels, short signals)."""


@dataclass(frozen=True)
class TabularInputs:
    numeric: NDArray[np.float32]
    categorical: NDArray[np.int64]
    categorical_cardinalities: list[int]

    @property
    def n_numeric(self) -> int:
        return int(self.numeric.shape[1])


@dataclass(frozen=True)
class CropBatchIndex:
    """One training batch: dataset positions and the crop start of each (small; pickled to workers)."""

    positions: NDArray[np.int64]
    starts: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.positions)

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.positions.tolist(), self.starts.tolist(), strict=True))


@dataclass(frozen=True)
class WindowBatchIndex:
    """One evaluation batch: dataset positions whose window stacks are read together."""

    positions: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.positions)


BatchIndex = CropBatchIndex | WindowBatchIndex


# ---- samplers --------------------------------------------------------------------------------------


class EpochCropSampler(Sampler[tuple[int, int]]):
    """Yields (position, crop_start) pairs: a shuffled order and random crops, both seeded by epoch."""

    def __init__(self, n_items: int, max_start: int, seed: int, shuffle: bool = True) -> None:
        self.n_items = n_items
        self.max_start = max_start
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_items

    def draw(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(order, crop starts) of the current epoch: a pure function of (seed, epoch)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n_items) if self.shuffle else np.arange(self.n_items)
        starts = rng.integers(0, self.max_start + 1, size=self.n_items)
        return order.astype(np.int64), starts.astype(np.int64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # A generator: the permutation is drawn at the first `next`, after Lightning's set_epoch.
        order, starts = self.draw()
        yield from zip(order.tolist(), starts.tolist(), strict=True)


def _check_shard(num_replicas: int, rank: int) -> None:
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1} (num_replicas={num_replicas})")


class EpochCropBatchSampler(Sampler[CropBatchIndex]):
    """Batches of `EpochCropSampler`'s (position, crop start) pairs, for one rank.

    The global epoch order is cut into consecutive batches of `batch_size` (exactly the batches a
    `DataLoader(batch_size, drop_last)` over `EpochCropSampler` would form); rank r of
    `num_replicas` takes batches r, r + num_replicas, … Under DDP every rank must run the same number
    of steps, so the last `n_batches % num_replicas` batches of an epoch are left out; ranks never
    share a record within an epoch.
    """

    def __init__(
        self,
        n_items: int,
        max_start: int,
        batch_size: int,
        seed: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_shard(num_replicas, rank)
        self.crops = EpochCropSampler(n_items, max_start, seed, shuffle=shuffle)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank

    @property
    def epoch(self) -> int:
        return self.crops.epoch

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)

    def _n_global_batches(self) -> int:
        n_items = self.crops.n_items
        whole = n_items // self.batch_size if self.drop_last else math.ceil(n_items / self.batch_size)
        return whole - whole % self.num_replicas

    def __len__(self) -> int:
        return self._n_global_batches() // self.num_replicas

    def __iter__(self) -> Iterator[CropBatchIndex]:
        order, starts = self.crops.draw()  # drawn at the first `next`, after Lightning's set_epoch
        for batch in range(self.rank, self._n_global_batches(), self.num_replicas):
            chunk = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            yield CropBatchIndex(order[chunk], starts[chunk])


class EvalBatchSampler(Sampler[WindowBatchIndex]):
    """Consecutive positions in batches, for one rank: rank r of n takes the r-th contiguous block.

    With several ranks the positions are padded (wrapping around to the first records) to a multiple
    of `num_replicas`, so every rank scores the same number of records and per-rank predictions can
    be all-gathered; at most `num_replicas - 1` records are then counted twice, as with torch's
    `DistributedSampler`.
    """

    def __init__(self, n_items: int, batch_size: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _check_shard(num_replicas, rank)
        self.n_items = n_items
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank

    def _positions(self) -> NDArray[np.int64]:
        per_rank = math.ceil(self.n_items / self.num_replicas)
        padded = np.arange(per_rank * self.num_replicas, dtype=np.int64) % max(self.n_items, 1)
        return padded[self.rank * per_rank : (self.rank + 1) * per_rank]

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n_items / self.num_replicas) / self.batch_size)

    def __iter__(self) -> Iterator[WindowBatchIndex]:
        positions = self._positions()
        for start in range(0, len(positions), self.batch_size):
            yield WindowBatchIndex(positions[start : start + self.batch_size])


# ---- dataset ---------------------------------------------------------------------------------------


class EcgWindowDataset(Dataset[ArrayBatch | Batch]):
    """Records of one split, read from the store's memory map.

    Keys: a `CropBatchIndex` → a training batch (x: (B, 12, window) crops); a `WindowBatchIndex` → an
    evaluation batch (x: (B, n_windows, 12, window) stacks of consecutive non-overlapping windows);
    both as NumPy arrays, for `BatchLoader`. The single-item keys (a (position, start) pair, or a
    position) return one unbatched item of tensors and serve per-sample DataLoaders (tests, the
    loader benchmark's "before" path).
    """

    def __init__(
        self,
        signals_path: Path,
        rows: NDArray[np.int64],
        *,
        window: int,
        n_windows: int,
        targets: NDArray[np.float32] | None = None,
        tabular: TabularInputs | None = None,
    ) -> None:
        self.signals_path = signals_path
        self.rows = rows
        self.window = window
        self.n_windows = n_windows
        self.targets = targets
        self.tabular = tabular
        self._signals: np.ndarray | None = None

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_signals"] = None  # reopen the memory map in the worker instead of pickling data
        return state

    @property
    def signals(self) -> np.ndarray:
        if self._signals is None:
            self._signals = np.load(self.signals_path, mmap_mode="r")
        return self._signals

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, key: BatchIndex) -> ArrayBatch: ...
    @overload
    def __getitem__(self, key: int | tuple[int, int]) -> Batch: ...
    def __getitem__(self, key: BatchIndex | int | tuple[int, int]) -> ArrayBatch | Batch:
        if isinstance(key, CropBatchIndex):
            return self.crop_batch(key.positions, key.starts)
        if isinstance(key, WindowBatchIndex):
            return self.window_batch(key.positions)
        if isinstance(key, tuple):
            position, start = key
            batch = self.crop_batch(np.array([position], dtype=np.int64), np.array([start], dtype=np.int64))
        else:
            batch = self.window_batch(np.array([int(key)], dtype=np.int64), prefetch=False)
        return {name: torch.as_tensor(value[0]) for name, value in batch.items()}

    # ---- batch reads -------------------------------------------------------------------------------
    def _array(self) -> np.ndarray:
        # The plain ndarray view of the memmap: slicing it skips np.memmap's per-slice bookkeeping,
        # which costs more than copying a 12 × 250 crop.
        return np.asarray(self.signals)

    def crop_batch(self, positions: NDArray[np.int64], starts: NDArray[np.int64]) -> ArrayBatch:
        """(12, window) crops at `starts` of the records at `positions`, in that order.

        One copy per crop straight into the batch array. Reading the whole rows first with one fancy
        index and gathering the crops from them measured ~35 % slower: it copies 4× the bytes.
        """
        rows = self.rows[positions]
        signals = self._array()
        x = np.empty((len(rows), N_LEADS, self.window), dtype=np.float32)
        for i in np.argsort(rows, kind="stable").tolist():  # sorted rows: sequential reads of the file
            start = int(starts[i])
            x[i] = signals[rows[i], :, start : start + self.window]
        return self._with_labels(x, rows, positions)

    def window_batch(self, positions: NDArray[np.int64], *, prefetch: bool = True) -> ArrayBatch:
        """(n_windows, 12, window) stacks of the first n_windows × window samples of each record;
        `prefetch=False` skips `prefetch_rows` (the single-record path: one hint per record costs more
        than it saves, and keeps the loader benchmark's per-sample reference as it was)."""
        rows = self.rows[positions]
        signals = self._array()
        span = self.window * self.n_windows
        order = np.argsort(rows, kind="stable")
        if prefetch:
            self.prefetch_rows(rows[order])
        x = np.empty((len(rows), self.n_windows, N_LEADS, self.window), dtype=np.float32)
        for i in order.tolist():
            x[i] = signals[rows[i], :, :span].reshape(N_LEADS, self.n_windows, self.window).transpose(1, 0, 2)
        return self._with_labels(x, rows, positions)

    def prefetch_rows(self, sorted_rows: NDArray[np.int64]) -> None:
        """Ask the kernel to read these whole records now (`POSIX_FADV_WILLNEED`), one call per run of
        consecutive rows, before the copy faults them in.

        Why, for evaluation batches only: a page fault on a cold mapping makes the kernel read ahead
        around it, i.e. the neighbouring records of other splits. Evaluation reads ~1 record in 10 of
        the file, so with a cold page cache it read the whole file (9× the bytes needed) one fault at a
        time; with the records requested up front it read only them, 6–7× faster at 4× less main-process
        CPU (benchmarks/results/loader.md). From a warm cache the calls cost ~2 µs per run of rows.
        Training crops touch every page of ~80 % of the records, where readahead is not waste, so
        `crop_batch` does not call this (measured: +30 % CPU warm for +28 % throughput cold).
        """
        fadvise = getattr(os, "posix_fadvise", None)
        if fadvise is None or len(sorted_rows) == 0:  # not on this platform (macOS): the kernel's default
            return
        signals = self.signals
        if not signals.flags.c_contiguous:  # records are not contiguous byte ranges of the file
            return
        row_bytes = int(signals.strides[0])
        offset = int(getattr(signals, "offset", 0))
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        descriptor = os.open(self.signals_path, os.O_RDONLY)
        try:
            for run in np.split(sorted_rows, breaks):
                fadvise(descriptor, offset + int(run[0]) * row_bytes, len(run) * row_bytes, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(descriptor)

    def _with_labels(self, x: NDArray[np.float32], rows: NDArray[np.int64], positions: NDArray[np.int64]) -> ArrayBatch:
        batch: ArrayBatch = {"x": x, "row": rows.astype(np.int64)}
        if self.targets is not None:
            batch["y"] = self.targets[positions]
        if self.tabular is not None:
            batch["numeric"] = self.tabular.numeric[positions]
            batch["categorical"] = self.tabular.categorical[positions]
        return batch


# ---- loader ----------------------------------------------------------------------------------------


def _for_transport(batch: Any) -> Any:
    """collate_fn of `BatchLoader` (runs in the worker): large arrays become tensors, which travel in
    shared memory; small ones stay NumPy and travel in the pickled message (module docstring)."""
    return {
        name: torch.from_numpy(value) if value.nbytes >= SHARED_MEMORY_MIN_BYTES else value
        for name, value in batch.items()
    }


class BatchLoader(DataLoader[ArrayBatch]):
    """A DataLoader over whole-batch keys that yields dicts of tensors.

    The sampler yields one batch index at a time (`batch_size=None`); the dataset, in a worker or in
    the main process, returns NumPy arrays; large ones are sent as shared-memory tensors, and
    iteration wraps the rest with `torch.as_tensor` (no copy) in the main process, then pins them
    when `pin_memory` (DataLoader's own pinning thread would not see inside NumPy arrays). Workers
    persist across epochs when there are any.
    """

    def __init__(
        self,
        dataset: EcgWindowDataset,
        sampler: Sampler[CropBatchIndex] | Sampler[WindowBatchIndex],
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]  # its batch keys return ArrayBatch
            batch_size=None,
            sampler=sampler,
            num_workers=num_workers,
            collate_fn=_for_transport,
            persistent_workers=num_workers > 0,
        )
        self.pin_batches = pin_memory

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]  # tensors, not the raw worker output
        for arrays in super().__iter__():
            batch = {name: torch.as_tensor(value) for name, value in arrays.items()}
            if self.pin_batches:
                batch = {name: value.pin_memory() for name, value in batch.items()}
            yield batch


# ---- data module -----------------------------------------------------------------------------------


class StoreDataModule(L.LightningDataModule):
    """Train / val / test splits of a store for one target (diagnoses or labs) and optional tabular
    inputs. `target=None` (pretraining) keeps every record; with a target, records whose targets are
    all unknown are dropped (they would contribute nothing to the masked loss or the metric)."""

    def __init__(
        self,
        store_path: str | Path,
        data: DataConfig,
        *,
        seed: int,
        target: TargetName | None,
        tabular_groups: Sequence[FeatureGroup] | None = None,
    ) -> None:
        super().__init__()
        self.store_path = Path(store_path)
        self.data = data
        self.seed = seed
        self.target = target
        self.tabular_groups = tuple(tabular_groups) if tabular_groups else None
        self.store = Store.open(self.store_path)
        self._check_signal_length()
        self.label_names = self._label_names()
        self._targets = self._load_targets()
        self._tabular = self._load_tabular()
        self.datasets: dict[Split, EcgWindowDataset] = {}

    # ---- what the modules need to know ------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    @property
    def tabular_shape(self) -> tuple[int, list[int]]:
        """(number of numeric columns, categorical cardinalities) of the tabular input."""
        if self._tabular is None:
            return 0, []
        return self._tabular.n_numeric, list(self._tabular.categorical_cardinalities)

    # ---- loading ---------------------------------------------------------------------------------
    def _check_signal_length(self) -> None:
        needed = self.data.window_samples * self.data.n_eval_windows
        available = self.store.manifest.preprocessing.num_samples
        if needed > available:
            raise DataError(
                f"{self.store_path}: records have {available} samples, but data.window_samples × "
                f"data.n_eval_windows = {needed}"
            )

    def _label_names(self) -> list[str]:
        if self.target is None:
            return []
        names = self.store.manifest.diagnosis_labels if self.target == "diagnoses" else self.store.manifest.lab_labels
        if not names:
            raise DataError(f"{self.store_path}: the store has no {self.target} labels to train on")
        return list(names)

    def _load_targets(self) -> NDArray[np.float32] | None:
        if self.target is None:
            return None
        return self.store.diagnosis_targets() if self.target == "diagnoses" else self.store.lab_targets()

    def _load_tabular(self) -> TabularInputs | None:
        if self.tabular_groups is None:
            return None
        arrays = self.store.tabular(groups=self.tabular_groups, observed_mask=self.data.observed_mask)
        if arrays.numeric.shape[1] + arrays.categorical.shape[1] == 0:
            raise DataError(f"{self.store_path}: no tabular features in groups {list(self.tabular_groups)}")
        return TabularInputs(arrays.numeric, arrays.categorical, list(arrays.categorical_cardinalities))

    def split_rows(self, split: Split) -> NDArray[np.int64]:
        rows = self.store.split_indices(split)
        if self._targets is not None:
            known = ~np.all(np.isnan(self._targets[rows]), axis=1)
            rows = rows[known]
        return rows

    def dataset(self, split: Split) -> EcgWindowDataset:
        if split not in self.datasets:
            rows = self.split_rows(split)
            if len(rows) == 0:
                raise DataError(f"{self.store_path}: the {split} split has no usable records")
            tabular = None
            if self._tabular is not None:
                tabular = TabularInputs(
                    self._tabular.numeric[rows],
                    self._tabular.categorical[rows],
                    self._tabular.categorical_cardinalities,
                )
            self.datasets[split] = EcgWindowDataset(
                self.store.path / "signals.npy",
                rows,
                window=self.data.window_samples,
                n_windows=self.data.n_eval_windows,
                targets=None if self._targets is None else np.ascontiguousarray(self._targets[rows]),
                tabular=tabular,
            )
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        train = self.dataset("train")
        if len(train) < self.data.batch_size:
            raise DataError(
                f"{self.store_path}: the training split has {len(train)} usable records, fewer than "
                f"data.batch_size={self.data.batch_size}"
            )
        self.dataset("val")

    # ---- loaders ---------------------------------------------------------------------------------
    def shard(self) -> tuple[int, int]:
        """(num_replicas, rank) of this process under the attached Trainer; (1, 0) without one."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return 1, 0
        connector = getattr(trainer, "_accelerator_connector", None)
        if getattr(connector, "use_distributed_sampler", False):
            raise DataError(
                f"{self.store_path}: StoreDataModule shards its own batches across the {trainer.world_size} "
                "processes; build the lightning.Trainer with use_distributed_sampler=False"
            )
        return trainer.world_size, trainer.global_rank

    def _pin_memory(self) -> bool:
        """Page-locked batches only when they go to a CUDA device (faster, asynchronous copies)."""
        if not torch.cuda.is_available():
            return False
        return self.trainer is None or self.trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> BatchLoader:
        train = self.dataset("train")
        max_start = self.store.manifest.preprocessing.num_samples - self.data.window_samples
        num_replicas, rank = self.shard()
        sampler = EpochCropBatchSampler(
            len(train),
            max_start,
            self.data.batch_size,
            seed=self.seed,
            shuffle=True,
            drop_last=True,  # a batch of 1 breaks BatchNorm and the batch-statistics objectives
            num_replicas=num_replicas,
            rank=rank,
        )
        if len(sampler) == 0:
            raise DataError(
                f"{self.store_path}: {len(train)} training records make fewer than one batch of "
                f"data.batch_size={self.data.batch_size} per process ({num_replicas} processes)"
            )
        # On resume the trainer's epoch is already restored here; set it before the first batch too.
        if self.trainer is not None:
            sampler.set_epoch(self.trainer.current_epoch)
        return BatchLoader(train, sampler, num_workers=self.data.num_workers, pin_memory=self._pin_memory())

    def eval_dataloader(self, split: Split, *, sharded: bool = False) -> BatchLoader:
        """Whole-split evaluation batches in record order; `sharded=True` gives this DDP rank its block
        (Lightning's validation loop), the default every record (scoring after fit, on one process)."""
        dataset = self.dataset(split)
        num_replicas, rank = self.shard() if sharded else (1, 0)
        sampler = EvalBatchSampler(len(dataset), self.data.eval_batch_size, num_replicas=num_replicas, rank=rank)
        return BatchLoader(dataset, sampler, num_workers=self.data.num_workers, pin_memory=self._pin_memory())

    def val_dataloader(self) -> BatchLoader:
        return self.eval_dataloader("val", sharded=True)

    def test_dataloader(self) -> BatchLoader:
        return self.eval_dataloader("test", sharded=True)
