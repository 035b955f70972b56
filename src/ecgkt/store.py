"""The dataset store: the contract between the cohort builder and every model in ecgkt.

Layout of a store folder (format version `STORE_FORMAT_VERSION`):

    manifest.json        StoreManifest: labels, features and their groups, folds, preprocessing,
                         imputation statistics (training folds only), source fingerprints
    signals.npy          float32 (N, 12, 1000) in mV, canonical lead order, NumPy .npy (memory-mapped)
    records.parquet      one row per ECG: row, subject_id, study_id, stay_id, hadm_id, ecg_time, intime, fold
    features.parquet     raw tabular features (NaN = not observed; categoricals as integer codes)
    diagnoses.parquet    diagnosis targets 0/1, NaN unknown, one column per ICD-10 label
    lab_labels.parquet   lab-abnormality targets 0/1, NaN unknown, one column per `<lab>_low|high`
    build_report.json    what the builder skipped and why (counts and examples)
    cohort_report.md     human-readable counts, prevalences and missingness

`Store.open` is the only reader; `StoreWriter` the only writer. Stores are written into a staging
folder and renamed into place, so a half-written store never exists at the final path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from ecgkt import __version__
from ecgkt.atomic_files import replacing, swap_in_folder, write_text_atomically
from ecgkt.errors import UserError
from ecgkt.signals.preprocess import PreprocessSpec

STORE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SIGNALS_FILE = "signals.npy"
RECORDS_FILE = "records.parquet"
FEATURES_FILE = "features.parquet"
DIAGNOSES_FILE = "diagnoses.parquet"
LAB_LABELS_FILE = "lab_labels.parquet"
REQUIRED_FILES = (MANIFEST_FILE, SIGNALS_FILE, RECORDS_FILE, FEATURES_FILE, DIAGNOSES_FILE, LAB_LABELS_FILE)

Split = Literal["train", "val", "test"]
FeatureGroup = Literal["routine", "lab"]


class StoreError(UserError, RuntimeError):
    """A store that cannot be read: missing files, another format version, inconsistent shapes."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One tabular column. `routine` = demographics, biometrics, acuity, vitals; `lab` = lab statistics."""

    name: str
    group: FeatureGroup
    kind: Literal["numeric", "categorical"] = "numeric"
    categories: list[str] | None = None  # for categoricals: code i means categories[i]
    median: float | None = None  # training-fold statistics (numeric only); never baked into values
    mean: float | None = None
    std: float | None = None
    observed_fraction: float | None = None


class FoldSpec(_Strict):
    n_folds: int = 20
    train: list[int] = Field(default_factory=lambda: list(range(18)))
    val: list[int] = Field(default_factory=lambda: [18])
    test: list[int] = Field(default_factory=lambda: [19])
    sizes: list[int] = Field(default_factory=list)
    seed: int = 0


# The one preprocessing contract (ecgkt.signals.preprocess); reads earlier store manifests unchanged.
PreprocessingSpec = PreprocessSpec


class StoreManifest(_Strict):
    format_version: int = STORE_FORMAT_VERSION
    ecgkt_version: str = __version__
    created_utc: str = ""
    n_records: int
    preprocessing: PreprocessingSpec
    diagnosis_labels: list[str]
    diagnosis_titles: dict[str, str] = Field(default_factory=dict)
    lab_labels: list[str]
    lab_reference_ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    features: list[FeatureSpec]
    folds: FoldSpec
    sources: dict[str, str] = Field(default_factory=dict)
    build_parameters: dict[str, object] = Field(default_factory=dict)

    def feature_names(self, groups: Sequence[FeatureGroup] = ("routine", "lab")) -> list[str]:
        return [f.name for f in self.features if f.group in groups]


@dataclass(frozen=True)
class TabularArrays:
    """Model-ready tabular inputs: numeric columns imputed with training medians and standardised."""

    numeric: NDArray[np.float32]  # (N, D_numeric [+ D_numeric observed-mask columns])
    categorical: NDArray[np.int64]  # (N, D_categorical); code len(categories) = missing
    numeric_names: list[str]
    categorical_names: list[str]
    categorical_cardinalities: list[int]  # including the "missing" code


class Store:
    """Read-only view of a store folder; cheap to open, signals are memory-mapped."""

    def __init__(self, path: Path, manifest: StoreManifest) -> None:
        self.path = path
        self.manifest = manifest
        self._signals: np.memmap | None = None
        self._records: pl.DataFrame | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        root = Path(path)
        if not root.is_dir():
            raise StoreError(f"{root}: not a store folder (it does not exist or is not a directory)")
        missing = [name for name in REQUIRED_FILES if not (root / name).exists()]
        if missing:
            raise StoreError(f"{root}: not a complete ecgkt store, missing {', '.join(missing)}")
        raw = json.loads((root / MANIFEST_FILE).read_text())
        version = raw.get("format_version")
        if version != STORE_FORMAT_VERSION:
            raise StoreError(
                f"{root / MANIFEST_FILE}: store format version {version!r}, this ecgkt ({__version__}) "
                f"reads version {STORE_FORMAT_VERSION}; rebuild the store with `ecgkt build`"
            )
        try:
            manifest = StoreManifest.model_validate(raw)
        except ValueError as error:
            raise StoreError(f"{root / MANIFEST_FILE}: invalid manifest: {error}") from error
        store = cls(root, manifest)
        shape = store.signals.shape
        expected = (manifest.n_records, 12, manifest.preprocessing.num_samples)
        if shape != expected:
            raise StoreError(f"{root / SIGNALS_FILE}: shape {shape}, manifest says {expected}")
        return store

    # ---- signals and records ----------------------------------------------------------------
    @property
    def signals(self) -> np.memmap:
        if self._signals is None:
            self._signals = np.load(self.path / SIGNALS_FILE, mmap_mode="r")
        return self._signals

    @property
    def records(self) -> pl.DataFrame:
        if self._records is None:
            self._records = pl.read_parquet(self.path / RECORDS_FILE)
        return self._records

    def __len__(self) -> int:
        return self.manifest.n_records

    @property
    def folds(self) -> NDArray[np.int64]:
        return self.records["fold"].to_numpy().astype(np.int64)

    def split_indices(self, split: Split) -> NDArray[np.int64]:
        wanted = getattr(self.manifest.folds, split)
        return np.flatnonzero(np.isin(self.folds, wanted)).astype(np.int64)

    # ---- targets ----------------------------------------------------------------------------
    def diagnosis_targets(self) -> NDArray[np.float32]:
        return self._matrix(DIAGNOSES_FILE, self.manifest.diagnosis_labels)

    def lab_targets(self) -> NDArray[np.float32]:
        return self._matrix(LAB_LABELS_FILE, self.manifest.lab_labels)

    # ---- tabular ----------------------------------------------------------------------------
    def raw_features(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / FEATURES_FILE)

    def tabular(
        self, groups: Sequence[FeatureGroup] = ("routine", "lab"), observed_mask: bool = False
    ) -> TabularArrays:
        """Impute with stored training-fold medians, standardise, optionally append observed masks."""
        frame = self.raw_features()
        numeric_specs = [f for f in self.manifest.features if f.group in groups and f.kind == "numeric"]
        categorical_specs = [f for f in self.manifest.features if f.group in groups and f.kind == "categorical"]
        n = len(self)
        columns: list[NDArray[np.float32]] = []
        masks: list[NDArray[np.float32]] = []
        for spec in numeric_specs:
            values = frame[spec.name].cast(pl.Float64).to_numpy().astype(np.float64)
            observed = np.isfinite(values)
            fill = spec.median if spec.median is not None and np.isfinite(spec.median) else 0.0
            filled = np.where(observed, values, fill)
            mean = spec.mean if spec.mean is not None and np.isfinite(spec.mean) else 0.0
            std = spec.std if spec.std is not None and np.isfinite(spec.std) and spec.std > 0 else 1.0
            columns.append(np.clip((filled - mean) / std, -10.0, 10.0).astype(np.float32))
            masks.append(observed.astype(np.float32))
        stacked = columns + (masks if observed_mask else [])
        numeric = np.stack(stacked, axis=1) if stacked else np.zeros((n, 0), np.float32)
        names = [s.name for s in numeric_specs]
        if observed_mask:
            names += [f"{s.name}__observed" for s in numeric_specs]
        cats: list[NDArray[np.int64]] = []
        cardinalities: list[int] = []
        for spec in categorical_specs:
            k = len(spec.categories or [])
            codes = frame[spec.name].cast(pl.Float64).to_numpy()
            valid = np.isfinite(codes) & (codes >= 0) & (codes < k)
            cats.append(np.where(valid, np.nan_to_num(codes), k).astype(np.int64))
            cardinalities.append(k + 1)
        categorical = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
        return TabularArrays(
            numeric=np.ascontiguousarray(numeric, dtype=np.float32),
            categorical=categorical,
            numeric_names=names,
            categorical_names=[s.name for s in categorical_specs],
            categorical_cardinalities=cardinalities,
        )

    def _matrix(self, file: str, names: list[str]) -> NDArray[np.float32]:
        frame = pl.read_parquet(self.path / file)
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise StoreError(f"{self.path / file}: columns {missing[:5]} listed in the manifest are absent")
        if not names:
            return np.zeros((len(self), 0), dtype=np.float32)
        return frame.select(names).cast(pl.Float32).to_numpy().astype(np.float32)


class StoreWriter:
    """Writes a store into a staging folder; `commit` renames it into place atomically.

    The staging folder persists until commit, so a builder can write signals in chunks and resume
    after being killed (the builder owns its own progress markers inside the staging folder).
    """

    def __init__(self, destination: str | os.PathLike[str], staging: str | os.PathLike[str] | None = None) -> None:
        self.destination = Path(destination)
        self.staging = (
            Path(staging) if staging is not None else self.destination.with_name(self.destination.name + ".partial")
        )
        self.staging.mkdir(parents=True, exist_ok=True)

    def signals(self, n_records: int, num_samples: int = 1000) -> np.memmap:
        """Open (create or reopen for resume) the signal array in the staging folder."""
        path = self.staging / SIGNALS_FILE
        shape = (n_records, 12, num_samples)
        if path.exists():
            existing = np.load(path, mmap_mode="r+")
            if existing.shape == shape and existing.dtype == np.float32:
                return existing
            del existing
            path.unlink()
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def write_table(self, name: str, frame: pl.DataFrame) -> None:
        with replacing(self.staging / name, suffix=".tmp") as temporary:
            frame.write_parquet(temporary)

    def write_table_batches(self, name: str, batches: Iterable[pl.DataFrame]) -> None:
        """Like `write_table` for a table too large to hold at once: each batch (all with one schema)
        becomes a Parquet row group, written as it comes, so memory is one batch, not the table."""
        import pyarrow.parquet as pq

        with replacing(self.staging / name, suffix=".tmp") as temporary:
            parquet: pq.ParquetWriter | None = None
            try:
                for batch in batches:
                    table = batch.to_arrow()
                    if parquet is None:
                        parquet = pq.ParquetWriter(temporary, table.schema)
                    parquet.write_table(table)
            finally:
                if parquet is not None:
                    parquet.close()
            if parquet is None:
                raise ValueError(f"{self.staging / name}: no batches to write (a table needs at least its schema)")

    def write_json(self, name: str, payload: object) -> None:
        self.write_text(name, json.dumps(payload, indent=2, default=str))

    def write_text(self, name: str, text: str) -> None:
        write_text_atomically(self.staging / name, text)

    def write_manifest(self, manifest: StoreManifest) -> None:
        self.write_json(MANIFEST_FILE, manifest.model_dump(mode="json"))

    def commit(self, overwrite: bool = False) -> Path:
        """Validate the staged store by opening it, then move it to the destination."""
        signals = self.staging / SIGNALS_FILE
        if signals.exists():
            np.load(signals, mmap_mode="r+").flush()
        Store.open(self.staging)
        if self.destination.exists() and not overwrite:
            raise StoreError(f"{self.destination}: already exists (pass overwrite to replace it)")
        swap_in_folder(self.staging, self.destination)
        return self.destination
