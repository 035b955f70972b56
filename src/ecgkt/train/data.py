"""Datasets and the Lightning data module on a dataset store.

Training sees one random 2.5 s crop (250 samples) per record per epoch; evaluation sees the 4
non-overlapping 2.5 s windows of each 10 s record, whose sigmoid outputs the modules average.

Why the crop offsets come from the sampler: the sampler is seeded by (seed, epoch), so the order
*and* the crops of epoch e are the same whether the run went straight through or was killed and
resumed from `last.ckpt` (Lightning calls `sampler.set_epoch(e)` each epoch). Global RNG state would
not survive a restart.

Signals are read from the store's memory map one record at a time (never the whole array); the
map is reopened lazily in each DataLoader worker, so nothing large is pickled to workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset, Sampler

from ecgkt.config import DataConfig
from ecgkt.store import FeatureGroup, Split, Store

TargetName = Literal["diagnoses", "labs"]
Batch = dict[str, torch.Tensor]


class DataError(ValueError):
    """The store cannot feed the requested training run (too few records, no labels, short signals)."""


@dataclass(frozen=True)
class TabularInputs:
    numeric: NDArray[np.float32]
    categorical: NDArray[np.int64]
    categorical_cardinalities: list[int]

    @property
    def n_numeric(self) -> int:
        return int(self.numeric.shape[1])


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

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # A generator: the permutation is drawn at the first `next`, after Lightning's set_epoch.
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n_items) if self.shuffle else np.arange(self.n_items)
        starts = rng.integers(0, self.max_start + 1, size=self.n_items)
        yield from zip(order.tolist(), starts.tolist(), strict=True)


class EcgWindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Records of one split. Train items are (12, window) crops at the sampler's offset; evaluation
    items are (n_windows, 12, window) stacks of the consecutive non-overlapping windows."""

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

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, tuple):
            position, start = key
            row = int(self.rows[position])
            x = np.array(self.signals[row, :, start : start + self.window], dtype=np.float32)
        else:
            position = int(key)
            row = int(self.rows[position])
            span = self.window * self.n_windows
            record = np.array(self.signals[row, :, :span], dtype=np.float32)  # (12, W*window)
            x = np.ascontiguousarray(record.reshape(12, self.n_windows, self.window).transpose(1, 0, 2))
        item: dict[str, torch.Tensor] = {"x": torch.from_numpy(x), "row": torch.tensor(row)}
        if self.targets is not None:
            item["y"] = torch.from_numpy(self.targets[position])
        if self.tabular is not None:
            item["numeric"] = torch.from_numpy(self.tabular.numeric[position])
            item["categorical"] = torch.from_numpy(self.tabular.categorical[position])
        return item


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
    def train_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        train = self.dataset("train")
        max_start = self.store.manifest.preprocessing.num_samples - self.data.window_samples
        sampler = EpochCropSampler(len(train), max_start, seed=self.seed, shuffle=True)
        # On resume the trainer's epoch is already restored here; worker processes may prefetch
        # before Lightning's own set_epoch call, so set it now as well.
        if self.trainer is not None:
            sampler.set_epoch(self.trainer.current_epoch)
        return DataLoader(
            train,
            batch_size=self.data.batch_size,
            sampler=sampler,
            drop_last=True,  # a batch of 1 breaks BatchNorm and the batch-statistics objectives
            num_workers=self.data.num_workers,
            persistent_workers=False,
        )

    def eval_dataloader(self, split: Split) -> DataLoader[dict[str, torch.Tensor]]:
        return DataLoader(
            self.dataset(split),
            batch_size=self.data.eval_batch_size,
            shuffle=False,
            num_workers=self.data.num_workers,
        )

    def val_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader[dict[str, torch.Tensor]]:
        return self.eval_dataloader("test")
