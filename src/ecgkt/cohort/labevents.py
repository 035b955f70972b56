"""Streaming pass over `labevents` (≈118 M rows on MIMIC-IV): the one table never loaded whole.

One pass does three things, each batch being filtered before anything is kept:
- counts the reference-range values of the 45 protocol labs over *all* their rows (value → count
  per item, so the CardioLab median is exact while memory stays tiny);
- counts rows whose itemid is unknown to `d_labitems`;
- keeps the protocol-lab rows of cohort patients that fall near a cohort stay (from
  `intime − before` to `intime + after`), attached to that stay.
What is kept grows with the *cohort*, not with labevents, so peak memory is flat in file size
(benchmarks/build_labevents_memory.py measures it). The build passes a `sink` (a `ChunkSpill`) that
takes the kept rows batch by batch and spills them to Parquet, so they are not held either and the
pass's memory is flat in the cohort size too (benchmarks/scaling.py measures it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.sources import DEFAULT_BATCH_ROWS, parse_datetimes, parse_floats, row_examples, stream_csv
from ecgkt.mimic.labs import LAB_BY_ITEMID, LAB_ITEMS

LABEVENTS_READ_COLUMNS: dict[str, type[pl.Int64] | type[pl.String]] = {
    "subject_id": pl.Int64,
    "itemid": pl.Int64,
    "charttime": pl.String,
    "valuenum": pl.String,  # text: a non-numeric value is a counted skip, not a crash at row 90 M
    "ref_range_lower": pl.String,
    "ref_range_upper": pl.String,
}

KEPT_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "stay_id": pl.Int64(),
    "itemid": pl.Int64(),
    "charttime": pl.Datetime("us"),
    "valuenum": pl.Float64(),
}


@dataclass
class LabExtract:
    """Result of the pass: rows near cohort stays, CardioLab reference ranges and counts."""

    rows: pl.DataFrame  # stay_id, itemid, charttime (datetime), valuenum (float); empty when a sink took them
    rows_kept: int  # rows near a cohort stay (each counted once, whether kept here or given to the sink)
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
    batch_rows: int = DEFAULT_BATCH_ROWS,
    on_batch: Callable[[int], None] | None = None,
    sink: Callable[[pl.DataFrame], None] | None = None,
) -> LabExtract:
    """One streaming pass; `stays` has subject_id, stay_id, intime of the cohort stays.

    Kept rows (stay_id, itemid, charttime, valuenum) go to `sink` batch by batch when one is given
    (the returned `rows` is then empty), else they are returned sorted by stay, item, time, value.
    """
    started = time.perf_counter()
    protocol_ids = pl.Series(sorted(LAB_BY_ITEMID), dtype=pl.Int64).implode()
    known = pl.Series(sorted(known_itemids), dtype=pl.Int64).implode() if known_itemids is not None else None
    subjects = stays["subject_id"].unique().implode()
    windows = stays.select(
        "subject_id",
        "stay_id",
        (pl.col("intime") - pl.duration(microseconds=int(before_minutes * 60e6))).alias("_from"),
        (pl.col("intime") + pl.duration(microseconds=int(after_minutes * 60e6))).alias("_to"),
    )
    kept: list[pl.DataFrame] = []
    range_counts: list[pl.DataFrame] = []
    rows_read = rows_protocol = rows_kept = 0
    unknown_examples: list[str] = []
    unknown_count = 0

    for batch in stream_csv(path, LABEVENTS_READ_COLUMNS, batch_rows, skips=skips):
        rows_read += batch.height
        if known is not None:
            unknown = batch.filter(~pl.col("itemid").is_in(known))
            unknown_count += unknown.height
            if unknown.height and len(unknown_examples) < 5:
                unknown_examples += row_examples(unknown, path, ("itemid",), limit=5 - len(unknown_examples))
        protocol = batch.filter(pl.col("itemid").is_in(protocol_ids))
        rows_protocol += protocol.height
        if protocol.height:
            range_counts.append(_count_ranges(protocol))
            cohort_rows = protocol.filter(pl.col("subject_id").is_in(subjects))
            if cohort_rows.height:
                near = _near_stays(cohort_rows, windows, path, skips)
                rows_kept += near.height
                if sink is not None:
                    sink(near)
                else:
                    kept.append(near)
        if on_batch is not None:
            on_batch(batch.height)

    skips.add("labevents.unknown_itemid", unknown_count, unknown_examples)
    counts = (
        pl.concat(range_counts).group_by("itemid", "bound", "value").agg(pl.col("n").sum())
        if range_counts
        else pl.DataFrame(schema={"itemid": pl.Int64, "bound": pl.String, "value": pl.Float64, "n": pl.UInt32})
    )
    rows = pl.concat(kept) if kept else pl.DataFrame(schema=KEPT_ROWS_SCHEMA)
    return LabExtract(
        rows=rows.sort("stay_id", "itemid", "charttime", "valuenum"),
        rows_kept=rows_kept,
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


def _near_stays(rows: pl.DataFrame, windows: pl.DataFrame, path: Path, skips: SkipLog) -> pl.DataFrame:
    """Parse the cohort patients' rows, count bad ones, keep those inside a stay's window."""
    rows = rows.with_columns(
        parse_floats("valuenum").alias("_value"),
        parse_datetimes("charttime").alias("_time"),
    )
    no_value = rows.filter(pl.col("valuenum").is_null())
    skips.add(
        "labevents.missing_valuenum",
        no_value.height,
        (f"{path.name} row {r['_row']}: itemid={r['itemid']}" for r in no_value.head(5).iter_rows(named=True)),
    )
    bad_value = rows.filter(
        pl.col("valuenum").is_not_null() & (pl.col("_value").is_null() | ~pl.col("_value").is_finite())
    )
    skips.add(
        "labevents.non_numeric_valuenum",
        bad_value.height,
        (f"{path.name} row {r['_row']}: valuenum={r['valuenum']!r}" for r in bad_value.head(5).iter_rows(named=True)),
    )
    bad_time = rows.filter(pl.col("_time").is_null())
    skips.add(
        "labevents.bad_charttime",
        bad_time.height,
        (f"{path.name} row {r['_row']}: charttime={r['charttime']!r}" for r in bad_time.head(5).iter_rows(named=True)),
    )
    usable = rows.filter(pl.col("_value").is_not_null() & pl.col("_value").is_finite() & pl.col("_time").is_not_null())
    joined = usable.join(windows, on="subject_id").filter(
        (pl.col("_time") >= pl.col("_from")) & (pl.col("_time") <= pl.col("_to"))
    )
    return joined.select("stay_id", "itemid", pl.col("_time").alias("charttime"), pl.col("_value").alias("valuenum"))
