"""Streaming pass over `labevents` (≈118 M rows on MIMIC-IV): the one table never loaded whole.

One pass does three things, each block being filtered before anything is kept:
- counts the reference-range values of the 45 protocol labs over *all* their rows (value → count
  per item, so the CardioLab median is exact while memory stays tiny);
- counts rows whose itemid is unknown to `d_labitems`;
- keeps the protocol-lab rows of cohort patients that fall near a cohort stay (from
  `intime − before` to `intime + after`), attached to that stay.
What is kept grows with the *cohort*, not with labevents, so peak memory is flat in file size
(benchmarks/build_labevents_memory.py measures it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ecgkt.build.report import SkipLog
from ecgkt.build.sources import parse_datetimes, parse_floats, stream_csv
from ecgkt.mimic.labs import LAB_BY_ITEMID, LAB_ITEMS

LABEVENTS_READ_COLUMNS: dict[str, pa.DataType] = {
    "subject_id": pa.int64(),
    "itemid": pa.int64(),
    "charttime": pa.string(),
    "valuenum": pa.string(),  # text: a non-numeric value is a counted skip, not a crash at row 90 M
    "ref_range_lower": pa.string(),
    "ref_range_upper": pa.string(),
}


@dataclass
class LabExtract:
    """Result of the pass: rows near cohort stays, CardioLab reference ranges and counts."""

    rows: pl.DataFrame  # stay_id, itemid, charttime (datetime), valuenum (float)
    reference_ranges: dict[str, tuple[float | None, float | None]]  # lab name → (median lower, median upper)
    rows_read: int
    rows_protocol: int
    seconds: float


def _weighted_median(values: np.ndarray, counts: np.ndarray) -> float:
    order = np.argsort(values)
    values, counts = values[order], counts[order]
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    lower = values[np.searchsorted(cumulative, (total - 1) // 2 + 1)]
    upper = values[np.searchsorted(cumulative, total // 2 + 1)]
    return float((lower + upper) / 2.0)


def reference_medians(counts: pl.DataFrame) -> dict[str, tuple[float | None, float | None]]:
    """(itemid, bound, value, n) counts → lab name → (median lower, median upper); None if never given."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for item in LAB_ITEMS:
        bounds: list[float | None] = []
        for bound in ("lower", "upper"):
            part = counts.filter((pl.col("itemid") == item.itemid) & (pl.col("bound") == bound))
            if part.height == 0:
                bounds.append(None)
                continue
            bounds.append(_weighted_median(part["value"].to_numpy(), part["n"].to_numpy()))
        if bounds[0] is not None or bounds[1] is not None:
            out[item.name] = (bounds[0], bounds[1])
    return out


def stream_labevents(
    path: Path,
    stays: pl.DataFrame,
    *,
    known_itemids: set[int] | None,
    before_minutes: float,
    after_minutes: float,
    skips: SkipLog,
    block_bytes: int = 16 << 20,
    on_block: Callable[[int], None] | None = None,
) -> LabExtract:
    """One streaming pass; `stays` has subject_id, stay_id, intime of the cohort stays."""
    started = time.perf_counter()
    protocol_ids = pa.array(sorted(LAB_BY_ITEMID), type=pa.int64())
    known = pa.array(sorted(known_itemids), type=pa.int64()) if known_itemids is not None else None
    subjects = pa.array(stays["subject_id"].unique().sort().to_list(), type=pa.int64())
    windows = stays.select(
        "subject_id",
        "stay_id",
        (pl.col("intime") - pl.duration(microseconds=int(before_minutes * 60e6))).alias("_from"),
        (pl.col("intime") + pl.duration(microseconds=int(after_minutes * 60e6))).alias("_to"),
    )
    kept: list[pl.DataFrame] = []
    range_counts: list[pl.DataFrame] = []
    rows_read = rows_protocol = 0
    unknown_examples: list[str] = []
    unknown_count = 0

    for first_row, batch in stream_csv(path, LABEVENTS_READ_COLUMNS, skips, block_bytes):
        rows_read += batch.num_rows
        if known is not None:
            unknown_mask = pc.invert(pc.is_in(batch["itemid"], value_set=known))
            n_unknown = pc.sum(unknown_mask).as_py() or 0
            if n_unknown:
                unknown_count += n_unknown
                if len(unknown_examples) < 5:
                    idx = np.flatnonzero(unknown_mask.to_numpy(zero_copy_only=False))[:5]
                    unknown_examples += [
                        f"{path.name} row {first_row + i}: itemid {batch['itemid'][i].as_py()}" for i in idx
                    ]
        protocol_mask = pc.is_in(batch["itemid"], value_set=protocol_ids)
        protocol = batch.filter(protocol_mask)
        rows_protocol += protocol.num_rows
        if protocol.num_rows:
            frame = pl.from_arrow(protocol)
            assert isinstance(frame, pl.DataFrame)
            range_counts.append(_count_ranges(frame))
            in_cohort = pc.is_in(protocol["subject_id"], value_set=subjects)
            cohort_rows = pl.from_arrow(protocol.filter(in_cohort))
            assert isinstance(cohort_rows, pl.DataFrame)
            if cohort_rows.height:
                protocol_index = np.flatnonzero(protocol_mask.to_numpy(zero_copy_only=False))
                cohort_index = protocol_index[np.flatnonzero(in_cohort.to_numpy(zero_copy_only=False))]
                row_numbers = first_row + cohort_index.astype(np.int64)
                kept.append(_near_stays(cohort_rows, row_numbers, windows, path, skips))
        if on_block is not None:
            on_block(batch.num_rows)

    skips.add("labevents.unknown_itemid", unknown_count, unknown_examples)
    counts = (
        pl.concat(range_counts).group_by("itemid", "bound", "value").agg(pl.col("n").sum())
        if range_counts
        else pl.DataFrame(
            schema={"itemid": pl.Int64, "bound": pl.String, "value": pl.Float64, "n": pl.UInt32}
        )
    )
    rows = (
        pl.concat(kept)
        if kept
        else pl.DataFrame(
            schema={
                "stay_id": pl.Int64,
                "itemid": pl.Int64,
                "charttime": pl.Datetime("us"),
                "valuenum": pl.Float64,
            }
        )
    )
    return LabExtract(
        rows=rows.sort("stay_id", "itemid", "charttime", "valuenum"),
        reference_ranges=reference_medians(counts),
        rows_read=rows_read,
        rows_protocol=rows_protocol,
        seconds=time.perf_counter() - started,
    )


def _count_ranges(frame: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for bound, column in (("lower", "ref_range_lower"), ("upper", "ref_range_upper")):
        parts.append(
            frame.select("itemid", parse_floats(column).alias("value"))
            .drop_nulls("value")
            .filter(pl.col("value").is_finite())
            .group_by("itemid", "value")
            .agg(pl.len().alias("n"))
            .with_columns(pl.lit(bound).alias("bound"))
            .select("itemid", "bound", "value", "n")
        )
    return pl.concat(parts)


def _near_stays(
    rows: pl.DataFrame, row_numbers: np.ndarray, windows: pl.DataFrame, path: Path, skips: SkipLog
) -> pl.DataFrame:
    """Parse the cohort patients' rows, count bad ones, keep those inside a stay's window."""
    rows = rows.with_columns(
        pl.Series("_row", row_numbers, dtype=pl.Int64),
        parse_floats("valuenum").alias("_value"),
        parse_datetimes("charttime").alias("_time"),
    )
    bad_value = rows.filter(pl.col("valuenum").is_not_null() & pl.col("_value").is_null())
    skips.add(
        "labevents.non_numeric_valuenum",
        bad_value.height,
        (
            f"{path.name} row {r['_row']}: valuenum={r['valuenum']!r}"
            for r in bad_value.head(5).iter_rows(named=True)
        ),
    )
    bad_time = rows.filter(pl.col("_time").is_null())
    skips.add(
        "labevents.bad_charttime",
        bad_time.height,
        (
            f"{path.name} row {r['_row']}: charttime={r['charttime']!r}"
            for r in bad_time.head(5).iter_rows(named=True)
        ),
    )
    usable = rows.filter(
        pl.col("_value").is_not_null() & pl.col("_value").is_finite() & pl.col("_time").is_not_null()
    )
    joined = usable.join(windows, on="subject_id").filter(
        (pl.col("_time") >= pl.col("_from")) & (pl.col("_time") <= pl.col("_to"))
    )
    return joined.select(
        "stay_id", "itemid", pl.col("_time").alias("charttime"), pl.col("_value").alias("valuenum")
    )
