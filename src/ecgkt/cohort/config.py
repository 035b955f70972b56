"""Every knob of the cohort builder, in one validated object that is written into the store.

All values land in `manifest.build_parameters`, so a store always says how it was built. The
defaults follow the MDS-ED / CardioLab protocol (design.md §3); the label-count thresholds default
to *relative* values so that tiny synthetic cohorts still produce labels.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ecgkt.cohort.sources import DEFAULT_BATCH_ROWS


class BuildConfig(BaseModel):
    """Parameters of one build. Frozen: a build is defined by its inputs and this object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, description="Drives the fold assignment; same seed + inputs = same store.")
    workers: int = Field(default=2, ge=1, le=256, description="Worker processes for WFDB ingestion.")
    n_folds: int = Field(default=20, ge=3, le=100, description="Folds 0..n-3 train, n-2 validation, n-1 test.")

    match_window_minutes: float = Field(
        default=90.0, gt=0, description="ECG matches a stay if intime <= ecg_time <= intime + this."
    )
    feature_window_minutes: float = Field(
        default=90.0, gt=0, description="Vitals and labs summarised over [intime, intime + this]."
    )
    biometrics_window_days: int = Field(
        default=30, ge=0, description="omr value closest to the ECG date within ± this many days."
    )
    lab_label_window_minutes: float = Field(
        default=60.0, gt=0, description="CardioLab: lab value closest to the ECG within ± this."
    )
    lab_outlier_rule: Literal["mds-ed", "none"] = Field(
        default="mds-ed",
        description="Per-lab outlier cleaning: 'mds-ed' drops values above MDS-ED's limits (e.g. glucose, "
        "platelets > 2000; ecgkt.cohort.protocol); 'none' keeps every numeric value.",
    )
    include_triage_vitals: bool = Field(
        default=True,
        description="Triage vitals (no charttime in MIMIC-IV-ED) enter the vital series at intime.",
    )

    min_label_count: int | None = Field(
        default=None,
        ge=1,
        description="Absolute minimum positives per diagnosis label (230 on the full ED cohort).",
    )
    min_label_fraction: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="Relative minimum when min_label_count is unset: fraction of records.",
    )
    min_label_floor: int = Field(default=10, ge=1, description="Lower bound of the relative minimum count.")
    lab_label_min_positives: int = Field(
        default=10, ge=0, description="Lab label kept if >= this many positives in val AND test."
    )
    lab_label_min_negatives: int = Field(
        default=10, ge=0, description="Lab label kept if >= this many negatives in val AND test."
    )

    signal_chunk_records: int = Field(default=256, ge=1, description="Records per resumable signal chunk.")
    csv_batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS, ge=1000, description="Rows per streamed CSV batch (labevents, omr, ...)."
    )
    statistics_chunk_stays: int = Field(
        default=5_000,
        ge=1,
        description="Stays per chunk of consecutive candidates: features, lab values and their cached rows are "
        "computed and stored one chunk at a time (bounds the memory of the pivot and of the tables stage).",
    )
    table_row_group_rows: int = Field(
        default=16_384,
        ge=1,
        description="Rows per Parquet row group of the store's feature and diagnosis tables, i.e. rows buffered "
        "when they are written (the writer also keeps ~1 KiB of metadata per column chunk until it closes).",
    )
    spill_rows: int = Field(
        default=500_000,
        ge=1,
        description="Labevents / vitals rows buffered in memory before they are spilled to per-chunk Parquet "
        "parts in the staging cache (bounds the streaming pass's memory).",
    )

    def effective_min_label_count(self, n_records: int) -> int:
        """The absolute count a diagnosis label needs, given the number of records in the store."""
        if self.min_label_count is not None:
            return self.min_label_count
        return max(self.min_label_floor, math.ceil(self.min_label_fraction * n_records))

    @property
    def train_folds(self) -> list[int]:
        return list(range(self.n_folds - 2))

    @property
    def val_fold(self) -> int:
        return self.n_folds - 2

    @property
    def test_fold(self) -> int:
        return self.n_folds - 1

    def resume_key_fields(self) -> dict[str, object]:
        """Values that change the store's content (worker count does not, so resuming may change it)."""
        return self.model_dump(exclude={"workers"})
