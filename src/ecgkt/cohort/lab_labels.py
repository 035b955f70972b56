"""Lab-abnormality labels (CardioLab rule, Alcaraz & Strodthoff 2024).

For each protocol lab with a reference range: the range is the median `ref_range_lower` /
`ref_range_upper` over all its labevents rows (computed in the streaming pass); the lab value
closest in time to the ECG within ±60 min decides `<lab>_low` (value < lower) and `<lab>_high`
(value > upper); with no value the target is unknown (NaN), masked later in loss and metric.
Labels survive only with enough positives *and* negatives in both the validation and the test fold,
so every kept label has a defined AUROC where it is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_ITEMS


def closest_values(records: pl.DataFrame, lab_rows: pl.DataFrame, window_minutes: float) -> pl.DataFrame:
    """Per record (`_cand`, stay_id, ecg_time) and lab item: the value closest to the ECG within ±window.

    Ties in time distance resolve to the earlier measurement, then the smaller value (deterministic).
    Returns columns _cand, itemid, value.
    """
    joined = (
        records.select("_cand", "stay_id", "ecg_time")
        .join(lab_rows, on="stay_id")
        .with_columns(((pl.col("charttime") - pl.col("ecg_time")).dt.total_microseconds().abs() / 60e6).alias("_gap"))
        .filter(pl.col("_gap") <= window_minutes)
    )
    return (
        joined.sort("_cand", "itemid", "_gap", "charttime", "valuenum")
        .group_by("_cand", "itemid", maintain_order=True)
        .agg(pl.col("valuenum").first().alias("value"))
    )


UNKNOWN_CODE = -1  # in `label_codes`: no value within the window


def label_candidates(
    closest: pl.DataFrame | Iterable[pl.DataFrame],
    reference_ranges: dict[str, tuple[float | None, float | None]],
    n_records: int,
) -> tuple[list[str], NDArray[np.float32]]:
    """All `<lab>_low` / `<lab>_high` targets that the reference ranges allow, NaN where unknown."""
    names, codes = label_codes(closest, reference_ranges, n_records)
    return names, codes_to_targets(codes)


def label_codes(
    closest: pl.DataFrame | Iterable[pl.DataFrame],
    reference_ranges: dict[str, tuple[float | None, float | None]],
    n_records: int,
) -> tuple[list[str], NDArray[np.int8]]:
    """`label_candidates` as int8 codes (1 abnormal, 0 normal, UNKNOWN_CODE unknown).

    A quarter of the float32 matrix: the build holds every candidate label of every record until
    the fold rule has chosen the few it keeps. `closest` (_cand = record row, itemid, value) may come
    in parts (the build reads them chunk by chunk from its cache), so the values are never all held.
    """
    bounds: list[tuple[str, int, str, float]] = []  # name, itemid, suffix, bound
    for lab in LAB_ITEMS:
        if lab.name not in reference_ranges:
            continue
        lower, upper = reference_ranges[lab.name]
        for suffix, bound in (("low", lower), ("high", upper)):
            if bound is not None:
                bounds.append((f"{lab.name}_{suffix}", lab.itemid, suffix, bound))
    codes = np.full((n_records, len(bounds)), UNKNOWN_CODE, dtype=np.int8)
    for part in [closest] if isinstance(closest, pl.DataFrame) else closest:
        for j, (_, itemid, suffix, bound) in enumerate(bounds):
            values = part.filter(pl.col("itemid") == itemid)
            rows = values["_cand"].to_numpy()
            numbers = values["value"].to_numpy().astype(np.float64)
            abnormal = numbers < bound if suffix == "low" else numbers > bound
            codes[rows, j] = abnormal.astype(np.int8)
    return [name for name, *_ in bounds], codes


def codes_to_targets(codes: NDArray[np.int8]) -> NDArray[np.float32]:
    """int8 label codes → float32 targets 0/1 with NaN where unknown."""
    return np.where(codes == UNKNOWN_CODE, np.float32(np.nan), codes.astype(np.float32)).astype(np.float32)


def select_lab_labels(
    names: list[str],
    matrix: NDArray[np.float32] | NDArray[np.int8],
    folds: NDArray[np.int64],
    evaluation_folds: tuple[int, ...],
    min_positives: int,
    min_negatives: int,
) -> list[int]:
    """Indices of labels with >= min positives and >= min negatives in *each* evaluation fold.

    `matrix`: float targets (NaN unknown) or `label_codes` (UNKNOWN_CODE unknown)."""
    keep = []
    for j in range(len(names)):
        ok = True
        for fold in evaluation_folds:
            column = matrix[folds == fold, j]
            known = column[column != UNKNOWN_CODE] if column.dtype == np.int8 else column[np.isfinite(column)]
            if (known == 1).sum() < min_positives or (known == 0).sum() < min_negatives:
                ok = False
                break
        if ok:
            keep.append(j)
    return keep
