"""Lab-abnormality labels (CardioLab rule, Alcaraz & Strodthoff 2024).

For each protocol lab with a reference range: the range is the median `ref_range_lower` /
`ref_range_upper` over all its labevents rows (computed in the streaming pass); the lab value
closest in time to the ECG within ±60 min decides `<lab>_low` (value < lower) and `<lab>_high`
(value > upper); with no value the target is unknown (NaN), masked later in loss and metric.
Labels survive only with enough positives *and* negatives in both the validation and the test fold,
so every kept label has a defined AUROC where it is evaluated.
"""

from __future__ import annotations

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


def label_candidates(
    closest: pl.DataFrame,
    reference_ranges: dict[str, tuple[float | None, float | None]],
    n_records: int,
) -> tuple[list[str], NDArray[np.float32]]:
    """All `<lab>_low` / `<lab>_high` targets that the reference ranges allow, NaN where unknown."""
    names: list[str] = []
    columns: list[NDArray[np.float32]] = []
    for lab in LAB_ITEMS:
        if lab.name not in reference_ranges:
            continue
        lower, upper = reference_ranges[lab.name]
        part = closest.filter(pl.col("itemid") == lab.itemid)
        rows = part["_cand"].to_numpy()
        values = part["value"].to_numpy().astype(np.float64)
        for suffix, bound, is_abnormal in (
            ("low", lower, lambda x, b: x < b),
            ("high", upper, lambda x, b: x > b),
        ):
            if bound is None:
                continue
            column = np.full(n_records, np.nan, dtype=np.float32)
            column[rows] = is_abnormal(values, bound).astype(np.float32)
            names.append(f"{lab.name}_{suffix}")
            columns.append(column)
    matrix = np.stack(columns, axis=1) if columns else np.zeros((n_records, 0), dtype=np.float32)
    return names, matrix


def select_lab_labels(
    names: list[str],
    matrix: NDArray[np.float32],
    folds: NDArray[np.int64],
    evaluation_folds: tuple[int, ...],
    min_positives: int,
    min_negatives: int,
) -> list[int]:
    """Indices of labels with >= min positives and >= min negatives in *each* evaluation fold."""
    keep = []
    for j in range(len(names)):
        ok = True
        for fold in evaluation_folds:
            column = matrix[folds == fold, j]
            known = column[np.isfinite(column)]
            if (known == 1).sum() < min_positives or (known == 0).sum() < min_negatives:
                ok = False
                break
        if ok:
            keep.append(j)
    return keep
