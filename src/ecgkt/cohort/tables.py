"""Loaders for the medium-size MIMIC tables the features need, filtered to the cohort while streaming.

Each loader returns a tidy Polars frame with parsed types and counts whatever it had to drop in
the SkipLog (unparseable times, non-numeric values, implausible values).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from ecgkt.cohort.report import MAX_EXAMPLES, SkipLog
from ecgkt.cohort.sources import parse_dates, parse_datetimes, parse_floats, read_csv, row_examples, stream_csv
from ecgkt.mimic.layout import VITAL_COLUMNS

# Plausible ranges (after unit conversion); values outside are dropped and counted. Wide on purpose:
# they remove typing errors (heart rate 1000, temperature 0), not sick patients.
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (80.0, 115.0),  # °F
    "heartrate": (10.0, 300.0),
    "resprate": (1.0, 80.0),
    "o2sat": (10.0, 100.0),
    "sbp": (30.0, 300.0),
    "dbp": (10.0, 200.0),
}
CELSIUS_RANGE = (25.0, 45.0)  # temperatures recorded in °C by mistake

# omr result_name → (feature, factor to the store's unit). Only names whose unit is explicit.
OMR_BIOMETRICS: dict[str, tuple[str, float]] = {
    "Weight (Lbs)": ("weight_kg", 0.45359237),
    "Height (Inches)": ("height_cm", 2.54),
    "BMI (kg/m2)": ("bmi", 1.0),
    "BMI": ("bmi", 1.0),
}
BIOMETRIC_RANGES: dict[str, tuple[float, float]] = {
    "height_cm": (120.0, 230.0),
    "weight_kg": (25.0, 350.0),
    "bmi": (10.0, 80.0),
}


def _in(column: str, values: pl.Series) -> pl.Expr:
    """Batch filter: keep rows whose `column` is one of `values` (the cohort's ids)."""
    return pl.col(column).is_in(values.drop_nulls().unique().implode())


def load_patients(path: Path, subjects: pl.Series, skips: SkipLog, batch_rows: int) -> pl.DataFrame:
    """subject_id, gender ("F"/"M"/null), anchor_age, anchor_year for cohort subjects."""
    frame = read_csv(
        path,
        {
            "subject_id": pl.Int64,
            "gender": pl.String,
            "anchor_age": pl.String,
            "anchor_year": pl.String,
        },
        batch_rows=batch_rows,
        keep=_in("subject_id", subjects),
        skips=skips,
    ).with_columns(
        parse_floats("anchor_age"),
        parse_floats("anchor_year"),
        pl.col("gender").str.strip_chars().str.to_uppercase(),
    )
    bad = frame.filter(pl.col("gender").is_not_null() & ~pl.col("gender").is_in(["F", "M"]))
    skips.add("patients.bad_gender", bad.height, row_examples(bad, path, ("subject_id", "gender")))
    frame = frame.with_columns(
        pl.when(pl.col("gender").is_in(["F", "M"])).then(pl.col("gender")).otherwise(None).alias("gender")
    )
    _count_duplicate_patients(frame, path, skips)
    return frame.unique("subject_id", keep="first", maintain_order=True).drop("_row")


def _count_duplicate_patients(frame: pl.DataFrame, path: Path, skips: SkipLog) -> None:
    """Later rows of a subject (the first row in file order wins): identical, or conflicting in
    gender, anchor_age or anchor_year (a different age or sex for one person: counted apart)."""
    first = pl.col("subject_id").is_first_distinct()
    winners = frame.filter(first).select("subject_id", *(pl.col(c).alias(f"_first_{c}") for c in _PATIENT_FIELDS))
    later = frame.filter(~first).join(winners, on="subject_id", how="left", maintain_order="left")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"_first_{c}")) for c in _PATIENT_FIELDS)
    conflicting = later.filter(differs)
    same = later.filter(~differs)
    skips.add("patients.duplicate_subject_id", same.height, row_examples(same, path, ("subject_id",)))
    skips.add(
        "patients.conflicting_duplicate",
        conflicting.height,
        (
            f"{path.name} row {r['_row']}: subject_id={r['subject_id']} "
            + ", ".join(f"{c}={r[c]!r} (first row: {r[f'_first_{c}']!r})" for c in _PATIENT_FIELDS)
            for r in conflicting.head(MAX_EXAMPLES).iter_rows(named=True)
        ),
    )


_PATIENT_FIELDS = ("gender", "anchor_age", "anchor_year")


def load_triage(path: Path, stays: pl.Series, skips: SkipLog, batch_rows: int) -> pl.DataFrame:
    """stay_id, acuity (1–5 or null), and the triage vitals (text → float; cleaned later)."""
    frame = read_csv(
        path,
        {"stay_id": pl.Int64, "acuity": pl.String, **dict.fromkeys(VITAL_COLUMNS, pl.String)},
        batch_rows=batch_rows,
        keep=_in("stay_id", stays),
        skips=skips,
    )
    frame = frame.with_columns(parse_floats("acuity").alias("_acuity"))
    bad = frame.filter(pl.col("acuity").is_not_null() & ~pl.col("_acuity").is_in([1.0, 2.0, 3.0, 4.0, 5.0]))
    skips.add("triage.bad_acuity", bad.height, row_examples(bad, path, ("stay_id", "acuity")))
    frame = frame.with_columns(
        pl.when(pl.col("_acuity").is_in([1.0, 2.0, 3.0, 4.0, 5.0]))
        .then(pl.col("_acuity"))
        .otherwise(None)
        .alias("acuity")
    ).drop("_acuity")
    later = frame.filter(~pl.col("stay_id").is_first_distinct())
    skips.add("triage.duplicate_stay_id", later.height, row_examples(later, path, ("stay_id",)))
    return frame.unique("stay_id", keep="first", maintain_order=True)


class _BatchSkips:
    """One skip rule counted over a stream: the total, and the first rows (in file order) as examples.

    Each batch contributes its count and its first `MAX_EXAMPLES` rows; batches come in file order,
    so the first rows kept are the first rows of the whole table — the same examples a whole-table
    pass reports, without holding the table.
    """

    def __init__(self, key: str, columns: tuple[str, ...]) -> None:
        self.key, self.columns = key, columns
        self.count = 0
        self.first: list[pl.DataFrame] = []
        self.kept = 0

    def add(self, rows: pl.DataFrame) -> None:
        self.count += rows.height
        if rows.height and self.kept < MAX_EXAMPLES:
            self.first.append(rows.head(MAX_EXAMPLES - self.kept))
            self.kept += self.first[-1].height

    def report(self, skips: SkipLog, path: Path) -> None:
        rows = pl.concat(self.first, how="diagonal_relaxed") if self.first else pl.DataFrame()
        skips.add(self.key, self.count, row_examples(rows, path, self.columns))


TRIAGE_READ_COLUMNS: dict[str, type[pl.Int64] | type[pl.String]] = {
    "stay_id": pl.Int64,
    "acuity": pl.String,
    **dict.fromkeys(VITAL_COLUMNS, pl.String),
}
ACUITY_LEVELS = [1.0, 2.0, 3.0, 4.0, 5.0]


def stream_triage(
    path: Path,
    intimes: pl.DataFrame,
    skips: SkipLog,
    batch_rows: int,
    vitals_sink: Callable[[pl.DataFrame], None] | None,
) -> pl.DataFrame:
    """`load_triage` batch by batch, keeping only stay_id and acuity (float); the triage vitals are
    cleaned per batch (`clean_vitals` of the rows at `intimes`: stay_id, charttime) and go to
    `vitals_sink` (None: not used), so the wide text table is never held for the whole cohort.

    Same rows, counts and examples as `load_triage` + `clean_vitals` of the whole table: a stay's
    first triage row (file order) wins, bad acuities are counted before that deduplication.
    """
    acuity_skips = _BatchSkips("triage.bad_acuity", ("stay_id", "acuity"))
    duplicate_skips = _BatchSkips("triage.duplicate_stay_id", ("stay_id",))
    order = {name: i for i, name in enumerate(VITAL_COLUMNS)}
    vital_skips = {key: _BatchSkips(key, cols) for key, cols in VITAL_SKIP_EXAMPLE_COLUMNS.items()}
    vital_candidates: dict[str, list[pl.DataFrame]] = {key: [] for key in VITAL_SKIP_EXAMPLE_COLUMNS}
    seen: set[int] = set()
    kept: list[pl.DataFrame] = []
    stays = _in("stay_id", intimes["stay_id"])
    for batch in stream_csv(path, TRIAGE_READ_COLUMNS, batch_rows, keep=stays, skips=skips):
        batch = batch.with_columns(parse_floats("acuity").alias("_acuity"))
        acuity_skips.add(batch.filter(pl.col("acuity").is_not_null() & ~pl.col("_acuity").is_in(ACUITY_LEVELS)))
        is_first = pl.col("stay_id").is_first_distinct() & ~pl.col("stay_id").is_in(list(seen))
        duplicate_skips.add(batch.filter(~is_first))
        first = batch.filter(is_first)
        seen.update(first["stay_id"].to_list())
        first = first.with_columns(
            pl.when(pl.col("_acuity").is_in(ACUITY_LEVELS)).then(pl.col("_acuity")).otherwise(None).alias("acuity")
        ).drop("_acuity")
        kept.append(first.select("stay_id", "acuity"))
        if vitals_sink is None:
            continue
        at_intime = first.join(intimes, on="stay_id", maintain_order="left").drop("acuity")
        long, rejects = clean_vitals_with_rejects(at_intime)
        for key, rows in rejects.items():
            vital_skips[key].count += rows.height
            if rows.height:
                vital_candidates[key].append(
                    rows.with_columns(pl.col("name").replace_strict(order, return_dtype=pl.Int64).alias("_vital"))
                    .sort("_vital", "_row")
                    .group_by("_vital", maintain_order=True)
                    .head(MAX_EXAMPLES)
                )
        vitals_sink(long)
    acuity_skips.report(skips, path)
    duplicate_skips.report(skips, path)
    if vitals_sink is not None:
        for key, parts in vital_candidates.items():
            vital_skips[key].first = [pl.concat(parts).sort("_vital", "_row").head(MAX_EXAMPLES)] if parts else []
            vital_skips[key].report(skips, path)
    if not kept:
        return pl.DataFrame(schema={"stay_id": pl.Int64, "acuity": pl.Float64})
    return pl.concat(kept)


VITALSIGN_READ_COLUMNS: dict[str, type[pl.Int64] | type[pl.String]] = {
    "stay_id": pl.Int64,
    "charttime": pl.String,
    **dict.fromkeys(VITAL_COLUMNS, pl.String),
}
# Skip rules of `clean_vitals` and the columns their examples show.
VITAL_SKIP_EXAMPLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "vitals.non_numeric": ("name", "text"),
    "vitals.celsius_converted": ("name", "value"),
    "vitals.implausible_value": ("name", "value"),
}


def load_vitalsign(path: Path, stays: pl.Series, skips: SkipLog, batch_rows: int) -> pl.DataFrame:
    """stay_id, charttime, vital columns as text, for cohort stays; unparseable times dropped."""
    frame = read_csv(path, VITALSIGN_READ_COLUMNS, batch_rows=batch_rows, keep=_in("stay_id", stays), skips=skips)
    return _timed_vitalsign(frame, path, skips)


def _timed_vitalsign(frame: pl.DataFrame, path: Path, skips: SkipLog) -> pl.DataFrame:
    frame = frame.with_columns(parse_datetimes("charttime").alias("_time"))
    bad = frame.filter(pl.col("_time").is_null())
    skips.add("vitalsign.bad_charttime", bad.height, row_examples(bad, path, ("stay_id", "charttime")))
    return frame.filter(pl.col("_time").is_not_null()).with_columns(pl.col("_time").alias("charttime")).drop("_time")


def stream_vitalsign(
    path: Path, stays: pl.Series, skips: SkipLog, batch_rows: int, sink: Callable[[pl.DataFrame], None]
) -> None:
    """`clean_vitals(load_vitalsign(...))` batch by batch: the cleaned long rows go to `sink`, so the
    whole cohort's vitalsign table (wide text, then long) is never held.

    Counts and examples equal the whole-table path's: an example is among the first in the order
    the whole table's unpivot lists rows (vital column, then row), so per batch the first few rows
    per vital are kept as candidates and the first `MAX_EXAMPLES` of all are reported at the end.
    """
    order = {name: i for i, name in enumerate(VITAL_COLUMNS)}
    counts = dict.fromkeys(VITAL_SKIP_EXAMPLE_COLUMNS, 0)
    candidates: dict[str, list[pl.DataFrame]] = {key: [] for key in VITAL_SKIP_EXAMPLE_COLUMNS}
    for batch in stream_csv(path, VITALSIGN_READ_COLUMNS, batch_rows, keep=_in("stay_id", stays), skips=skips):
        long, rejects = clean_vitals_with_rejects(_timed_vitalsign(batch, path, skips))
        for key, rows in rejects.items():
            counts[key] += rows.height
            if rows.height:
                first = (
                    rows.with_columns(pl.col("name").replace_strict(order, return_dtype=pl.Int64).alias("_vital"))
                    .sort("_vital", "_row")
                    .group_by("_vital", maintain_order=True)
                    .head(MAX_EXAMPLES)
                )
                candidates[key].append(first)
        sink(long)
    for key, parts in candidates.items():
        first = pl.concat(parts).sort("_vital", "_row").head(MAX_EXAMPLES) if parts else pl.DataFrame()
        skips.add(key, counts[key], row_examples(first, path, VITAL_SKIP_EXAMPLE_COLUMNS[key]))


def clean_vitals(wide: pl.DataFrame, source: Path, skips: SkipLog) -> pl.DataFrame:
    """Vital columns (text) → float with °C→°F repair and plausibility ranges; returns long format.

    Input columns: stay_id, charttime, _row and VITAL_COLUMNS; output: stay_id, charttime, name, value.
    """
    long, rejects = clean_vitals_with_rejects(wide)
    for key, rows in rejects.items():
        skips.add(key, rows.height, row_examples(rows, source, VITAL_SKIP_EXAMPLE_COLUMNS[key]))
    return long


def clean_vitals_with_rejects(wide: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """`clean_vitals` without the SkipLog: the long rows, and per skip rule the rows it concerns
    (long format, in unpivot order: vital column, then row; with `_row`, `name`, `text`, `value`)."""
    long = wide.unpivot(
        index=["stay_id", "charttime", "_row"],
        on=list(VITAL_COLUMNS),
        variable_name="name",
        value_name="text",
    )
    long = long.filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
    long = long.with_columns(parse_floats("text").alias("value"))
    rejects = {"vitals.non_numeric": long.filter(pl.col("value").is_null() | ~pl.col("value").is_finite())}
    long = long.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())

    celsius = (pl.col("name") == "temperature") & pl.col("value").is_between(*CELSIUS_RANGE)
    rejects["vitals.celsius_converted"] = long.filter(celsius)
    long = long.with_columns(
        pl.when(celsius).then(pl.col("value") * 9.0 / 5.0 + 32.0).otherwise(pl.col("value")).alias("value")
    )

    lower = pl.col("name").replace_strict({k: v[0] for k, v in VITAL_RANGES.items()}, return_dtype=pl.Float64)
    upper = pl.col("name").replace_strict({k: v[1] for k, v in VITAL_RANGES.items()}, return_dtype=pl.Float64)
    plausible = (pl.col("value") >= lower) & (pl.col("value") <= upper)
    rejects["vitals.implausible_value"] = long.filter(~plausible)
    return long.filter(plausible).select("stay_id", "charttime", "name", "value"), rejects


OMR_READ_COLUMNS: dict[str, type[pl.Int64] | type[pl.String]] = {
    "subject_id": pl.Int64,
    "chartdate": pl.String,
    "result_name": pl.String,
    "result_value": pl.String,
}


def stream_omr(path: Path, ecg_dates: pl.DataFrame, window_days: int, skips: SkipLog, batch_rows: int) -> pl.DataFrame:
    """`load_omr` parsed batch by batch, keeping only rows that `closest_biometrics` can use: cohort
    subjects, the biometrics, and dates within ±`window_days` of one of that subject's ECG dates
    (`ecg_dates`: subject_id, _ecg_date). Skip counts and examples are those of `load_omr` (every
    cohort row is checked; the window only drops valid rows no record can use).
    """
    checks = {
        "omr.bad_chartdate": _BatchSkips("omr.bad_chartdate", ("subject_id", "chartdate")),
        "omr.non_numeric": _BatchSkips("omr.non_numeric", ("result_name", "result_value")),
        "omr.implausible_value": _BatchSkips("omr.implausible_value", ("result_name", "result_value")),
    }
    keep = _in("subject_id", ecg_dates["subject_id"]) & pl.col("result_name").is_in(list(OMR_BIOMETRICS))
    kept: list[pl.DataFrame] = []
    for batch in stream_csv(path, OMR_READ_COLUMNS, batch_rows, keep=keep, skips=skips):
        rows, rejects = _parsed_omr(batch)
        for key, bad in rejects.items():
            checks[key].add(bad)
        near = (
            rows.select("_row", "subject_id", "chartdate")
            .join(ecg_dates, on="subject_id")
            .filter((pl.col("chartdate") - pl.col("_ecg_date")).dt.total_days().abs() <= window_days)
        )
        kept.append(rows.filter(pl.col("_row").is_in(near["_row"].implode())).drop("_row"))
    for check in checks.values():
        check.report(skips, path)
    if not kept:
        return pl.DataFrame(
            schema={"subject_id": pl.Int64, "chartdate": pl.Date, "feature": pl.String, "value": pl.Float64}
        )
    return pl.concat(kept)


def load_omr(path: Path, subjects: pl.Series, skips: SkipLog, batch_rows: int) -> pl.DataFrame:
    """subject_id, chartdate, feature (height_cm / weight_kg / bmi), value in the store's unit."""
    frame = read_csv(
        path,
        OMR_READ_COLUMNS,
        batch_rows=batch_rows,
        keep=_in("subject_id", subjects) & pl.col("result_name").is_in(list(OMR_BIOMETRICS)),
        skips=skips,
    )
    rows, rejects = _parsed_omr(frame)
    skips.add(
        "omr.bad_chartdate",
        rejects["omr.bad_chartdate"].height,
        row_examples(rejects["omr.bad_chartdate"], path, ("subject_id", "chartdate")),
    )
    for key in ("omr.non_numeric", "omr.implausible_value"):
        skips.add(key, rejects[key].height, row_examples(rejects[key], path, ("result_name", "result_value")))
    return rows.drop("_row")


def _parsed_omr(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """omr text rows → (_row, subject_id, chartdate, feature, value) and the rejected rows per skip rule."""
    frame = frame.with_columns(parse_dates("chartdate").alias("_date"), parse_floats("result_value").alias("_value"))
    rejects = {"omr.bad_chartdate": frame.filter(pl.col("_date").is_null())}
    frame = frame.filter(pl.col("_date").is_not_null())
    rejects["omr.non_numeric"] = frame.filter(pl.col("_value").is_null() | ~pl.col("_value").is_finite())
    frame = frame.filter(pl.col("_value").is_not_null() & pl.col("_value").is_finite())
    frame = frame.with_columns(
        pl.col("result_name")
        .replace_strict({k: v[0] for k, v in OMR_BIOMETRICS.items()}, return_dtype=pl.String)
        .alias("feature"),
        (
            pl.col("_value")
            * pl.col("result_name").replace_strict(
                {k: v[1] for k, v in OMR_BIOMETRICS.items()}, return_dtype=pl.Float64
            )
        ).alias("value"),
    )
    lower = pl.col("feature").replace_strict({k: v[0] for k, v in BIOMETRIC_RANGES.items()}, return_dtype=pl.Float64)
    upper = pl.col("feature").replace_strict({k: v[1] for k, v in BIOMETRIC_RANGES.items()}, return_dtype=pl.Float64)
    plausible = (pl.col("value") >= lower) & (pl.col("value") <= upper)
    rejects["omr.implausible_value"] = frame.filter(~plausible)
    kept = frame.filter(plausible).select("_row", "subject_id", pl.col("_date").alias("chartdate"), "feature", "value")
    return kept, rejects


def load_d_labitems(path: Path, batch_rows: int, skips: SkipLog | None = None) -> pl.DataFrame:
    """itemid, label: the catalogue labevents itemids are checked against."""
    return read_csv(path, {"itemid": pl.Int64, "label": pl.String}, batch_rows=batch_rows, skips=skips)
