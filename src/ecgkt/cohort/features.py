"""Tabular features of each ECG (MDS-ED): demographics, biometrics, acuity, 6 vitals and 45 labs × 9 statistics.

Raw values only: missing stays NaN in the store, and the imputation statistics (median, mean, std,
observed fraction) are computed on the training folds and stored beside the values in the
manifest, never baked into them — so a model can choose its imputation and no test information
leaks into training.

Encodings: gender and race are categorical integer codes (as floats, NaN unknown); acuity is
*numeric* (the ESI scale 1–5 is ordinal: 1 = most urgent), so median imputation and
standardisation are meaningful for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.mimic.layout import VITAL_COLUMNS
from ecgkt.store import FeatureGroup, FeatureSpec

STATISTICS: tuple[str, ...] = ("mean", "median", "min", "max", "std", "first", "last", "rate", "slope")
GENDER_CATEGORIES: tuple[str, ...] = ("F", "M")
RACE_CATEGORIES: tuple[str, ...] = ("white", "black", "hispanic", "asian", "other")
BIOMETRICS: tuple[str, ...] = ("height_cm", "weight_kg", "bmi")
_UNKNOWN_RACE = ("UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "DECLINED")


@dataclass(frozen=True)
class FeatureDef:
    name: str
    group: FeatureGroup
    kind: str = "numeric"
    categories: tuple[str, ...] | None = None


def feature_catalogue() -> list[FeatureDef]:
    """Every feature column, in store order: routine first (demographics, biometrics, acuity, vitals), then labs."""
    defs = [
        FeatureDef("age", "routine"),
        FeatureDef("gender", "routine", "categorical", GENDER_CATEGORIES),
        FeatureDef("race", "routine", "categorical", RACE_CATEGORIES),
        *(FeatureDef(name, "routine") for name in BIOMETRICS),
        FeatureDef("acuity", "routine"),
        *(FeatureDef(f"{vital}__{stat}", "routine") for vital in VITAL_COLUMNS for stat in STATISTICS),
        *(FeatureDef(f"{lab.name}__{stat}", "lab") for lab in LAB_ITEMS for stat in STATISTICS),
    ]
    return defs


def race_group(race: str | None) -> str | None:
    """MIMIC race strings ("WHITE - RUSSIAN", "HISPANIC/LATINO - CUBAN", ...) → 5 groups; unknown → None."""
    if race is None:
        return None
    text = race.strip().upper()
    if not text or any(text.startswith(u) for u in _UNKNOWN_RACE):
        return None
    if text.startswith("WHITE") or text == "PORTUGUESE":
        return "white"
    if text.startswith("BLACK"):
        return "black"
    if text.startswith("HISPANIC") or text.startswith("LATINO") or text == "SOUTH AMERICAN":
        return "hispanic"
    if text.startswith("ASIAN"):
        return "asian"
    return "other"


def series_statistics(long: pl.DataFrame, key: str) -> pl.DataFrame:
    """The 9 statistics of each (key, name) series; input columns: key, name, t (minutes), value.

    Output: one row per key, columns `<name>__<stat>`. first/last follow time (ties: smaller
    value first, so the result does not depend on file order); std is the sample standard
    deviation (NaN for one point); rate = (last − first) / first (NaN when first is 0); slope is
    the least-squares slope per minute (NaN with fewer than 2 distinct times).
    """
    t, v = pl.col("t"), pl.col("value")
    stats = (
        long.sort(key, "name", "t", "value")
        .group_by(key, "name", maintain_order=True)
        .agg(
            v.mean().alias("mean"),
            v.median().alias("median"),
            v.min().alias("min"),
            v.max().alias("max"),
            v.std(ddof=1).alias("std"),
            v.first().alias("first"),
            v.last().alias("last"),
            ((t - t.mean()) * (v - v.mean())).sum().alias("_sxy"),
            ((t - t.mean()) ** 2).sum().alias("_sxx"),
        )
        .with_columns(
            pl.when(pl.col("first") != 0)
            .then((pl.col("last") - pl.col("first")) / pl.col("first"))
            .otherwise(None)
            .alias("rate"),
            pl.when(pl.col("_sxx") > 1e-12).then(pl.col("_sxy") / pl.col("_sxx")).otherwise(None).alias("slope"),
        )
    )
    melted = stats.unpivot(index=[key, "name"], on=list(STATISTICS), variable_name="stat", value_name="x").with_columns(
        pl.concat_str(pl.col("name"), pl.lit("__"), pl.col("stat")).alias("column"),
        pl.col("x").cast(pl.Float64),
    )
    if melted.height == 0:
        return pl.DataFrame(schema={key: long.schema.get(key, pl.Int64)})
    return melted.pivot(on="column", index=key, values="x", aggregate_function=None)


def chunked_series_statistics(long: pl.DataFrame, columns: Sequence[str], chunk_stays: int) -> pl.DataFrame:
    """`series_statistics` over `long` (keyed by stay_id) `chunk_stays` stays at a time.

    Output: stay_id + exactly `columns` as Float32 (a statistic no stay of a chunk has is null), so
    chunks stack whatever names each chunk happens to contain. The input is sorted by stay once and
    sliced (zero-copy), so the cost stays linear in the number of rows.
    """
    if chunk_stays <= 0:
        raise ValueError(f"chunk_stays must be positive, got {chunk_stays}")
    schema = {"stay_id": long.schema.get("stay_id", pl.Int64), **dict.fromkeys(columns, pl.Float32)}
    ordered = long.sort("stay_id")
    stay_ids = ordered["stay_id"].unique(maintain_order=True)
    parts = [pl.DataFrame(schema=schema)]
    for first in range(0, stay_ids.len(), chunk_stays):
        chunk_ids = stay_ids.slice(first, chunk_stays)
        start = int(ordered["stay_id"].search_sorted(chunk_ids[0], side="left"))
        stop = int(ordered["stay_id"].search_sorted(chunk_ids[-1], side="right"))
        wide = series_statistics(ordered.slice(start, stop - start), "stay_id")
        absent = [pl.lit(None, dtype=pl.Float32).alias(name) for name in columns if name not in wide.columns]
        parts.append(
            wide.with_columns(absent).select(
                pl.col("stay_id").cast(schema["stay_id"]), *(pl.col(name).cast(pl.Float32) for name in columns)
            )
        )
    return pl.concat(parts, how="vertical")


def closest_biometrics(records: pl.DataFrame, omr: pl.DataFrame, window_days: int) -> pl.DataFrame:
    """Per record (`_cand`, subject_id, ecg_time): each biometric closest to the ECG date within ± days.

    All values on the closest date (before or after) are summarised by their median.
    """
    dated = records.select("_cand", "subject_id", pl.col("ecg_time").dt.date().alias("_ecg_date"))
    joined = (
        dated.join(omr, on="subject_id")
        .with_columns((pl.col("chartdate") - pl.col("_ecg_date")).dt.total_days().abs().alias("_gap"))
        .filter(pl.col("_gap") <= window_days)
    )
    if joined.height == 0:
        return records.select("_cand").with_columns([pl.lit(None, dtype=pl.Float64).alias(n) for n in BIOMETRICS])
    closest = joined.filter(pl.col("_gap") == pl.col("_gap").min().over("_cand", "feature"))
    values = (
        closest.group_by("_cand", "feature")
        .agg(pl.col("value").median())
        .pivot(on="feature", index="_cand", values="value")
    )
    for name in BIOMETRICS:
        if name not in values.columns:
            values = values.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return records.select("_cand").join(values.select("_cand", *BIOMETRICS), on="_cand", how="left")


def assemble_features(
    records: pl.DataFrame,
    triage: pl.DataFrame,
    vitals: pl.DataFrame,
    labs: pl.DataFrame,
    biometrics: pl.DataFrame,
    window_minutes: float,
    chunk_stays: int = 5_000,
) -> pl.DataFrame:
    """Raw float32 feature table in catalogue column order, one row per record (same order as `records`).

    The per-stay statistics are computed `chunk_stays` stays at a time: the long → wide pivot needs
    several times the memory of its input, and in one go it made the build's peak grow ~20 KiB per
    record (benchmarks/results/scaling.md).

    records: _cand, subject_id, stay_id, ecg_time, intime, race, age, gender
    vitals: stay_id, charttime, name, value   (already cleaned; triage vitals included)
    labs:   stay_id, itemid, charttime, valuenum
    """
    stays = records.select("stay_id", "intime").unique("stay_id")
    in_window = (pl.col("t") >= 0) & (pl.col("t") <= window_minutes)

    vital_long = (
        vitals.join(stays, on="stay_id")
        .with_columns(((pl.col("charttime") - pl.col("intime")).dt.total_microseconds() / 60e6).alias("t"))
        .filter(in_window)
        .select("stay_id", "name", "t", "value")
    )
    name_of = {lab.itemid: lab.name for lab in LAB_ITEMS}
    lab_long = (
        labs.join(stays, on="stay_id")
        .with_columns(
            ((pl.col("charttime") - pl.col("intime")).dt.total_microseconds() / 60e6).alias("t"),
            pl.col("itemid").replace_strict(name_of, return_dtype=pl.String).alias("name"),
        )
        .filter(in_window)
        .select("stay_id", "name", "t", pl.col("valuenum").alias("value"))
    )

    series_names = [f.name for f in feature_catalogue() if "__" in f.name]
    series = chunked_series_statistics(pl.concat([vital_long, lab_long]), series_names, chunk_stays)
    race_codes = {
        race: float(RACE_CATEGORIES.index(group))
        for race in records["race"].drop_nulls().unique().to_list()
        if (group := race_group(race)) is not None
    }
    base = records.select(
        "_cand",
        "stay_id",
        pl.col("age").cast(pl.Float64),
        pl.col("gender").replace_strict(
            {c: float(i) for i, c in enumerate(GENDER_CATEGORIES)}, default=None, return_dtype=pl.Float64
        ),
        pl.col("race").replace_strict(race_codes, default=None, return_dtype=pl.Float64),
    )
    frame = (
        base.join(biometrics, on="_cand", how="left")
        .join(triage.select("stay_id", pl.col("acuity").cast(pl.Float64)), on="stay_id", how="left")
        .join(series, on="stay_id", how="left")
        .sort("_cand")
    )
    names = [f.name for f in feature_catalogue()]
    missing = [pl.lit(None, dtype=pl.Float64).alias(n) for n in names if n not in frame.columns]
    # float32: 7 significant digits are plenty for clinical values and halve memory and disk
    # (466 columns × hundreds of thousands of records); nulls mark unobserved values
    return frame.with_columns(missing).select([pl.col(n).fill_nan(None).cast(pl.Float32).alias(n) for n in names])


def feature_spec(d: FeatureDef, train_values: pl.Series, n_train: int) -> FeatureSpec:
    """FeatureSpec of one column from its training-row values (null/NaN = not observed)."""
    values = train_values.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    observed = len(values) / max(1, n_train)
    if d.kind == "categorical":
        return FeatureSpec(
            name=d.name,
            group=d.group,
            kind="categorical",
            categories=list(d.categories or ()),
            observed_fraction=observed,
        )
    finite = values[np.isfinite(values)]
    return FeatureSpec(
        name=d.name,
        group=d.group,
        median=float(np.median(finite)) if finite.size else None,
        mean=float(np.mean(finite)) if finite.size else None,
        std=float(np.std(finite)) if finite.size else None,
        observed_fraction=observed,
    )


def feature_specs(frame: pl.DataFrame, train_mask: NDArray[np.bool_], defs: Sequence[FeatureDef]) -> list[FeatureSpec]:
    """FeatureSpec per column with median/mean/std/observed fraction from the training rows only."""
    train = frame.filter(pl.Series(train_mask))
    return [feature_spec(d, train[d.name], train.height) for d in defs]


def feature_specs_from_parquet(
    path: Path, train_mask: NDArray[np.bool_], defs: Sequence[FeatureDef]
) -> tuple[list[FeatureSpec], list[float]]:
    """`feature_specs` of a feature table on disk, read ONE column at a time; also each column's
    observed fraction over all rows (for the cohort report).

    The whole table (466 float32 columns) would be ~1.9 KiB per record in memory; one column of all
    records is 4 bytes per record, so this keeps the build's memory flat in the cohort size.
    """
    import pyarrow.parquet as pq

    mask = pl.Series(train_mask)
    n_train = int(np.count_nonzero(train_mask))
    specs: list[FeatureSpec] = []
    observed_all: list[float] = []
    table = pq.ParquetFile(path)  # metadata parsed once, columns read one by one
    for d in defs:
        column = pl.Series(d.name, table.read(columns=[d.name]).column(0))
        specs.append(feature_spec(d, column.filter(mask), n_train))
        observed_all.append(float(np.isfinite(column.cast(pl.Float64).fill_null(np.nan).to_numpy()).mean()))
    return specs, observed_all
