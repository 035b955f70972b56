"""ECG ↔ ED-stay matching (MDS-ED): an ECG belongs to a stay when intime <= ecg_time <= intime + 90 min.

When several stays match (overlapping stays of one patient), the *first* one — earliest intime,
then lowest stay_id — wins, as the protocol says. ECGs without a matching stay are not part of the
emergency-department cohort; they are counted, not errors.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.sources import DEFAULT_BATCH_ROWS, parse_datetimes, read_csv, row_examples


def load_record_list(path: Path, skips: SkipLog, batch_rows: int = DEFAULT_BATCH_ROWS) -> pl.DataFrame:
    """record_list.csv → subject_id, study_id, ecg_time (datetime), path; bad rows skipped and counted."""
    frame = read_csv(
        path,
        {"subject_id": pl.Int64, "study_id": pl.Int64, "ecg_time": pl.String, "path": pl.String},
        batch_rows=batch_rows,
        skips=skips,
    )
    no_id = frame.filter(pl.col("subject_id").is_null() | pl.col("study_id").is_null())
    skips.add("record_list.missing_id", no_id.height, row_examples(no_id, path, ("subject_id", "study_id")))
    frame = frame.filter(pl.col("subject_id").is_not_null() & pl.col("study_id").is_not_null())
    no_path = frame.filter(pl.col("path").is_null() | (pl.col("path").str.strip_chars() == ""))
    skips.add("record_list.bad_path", no_path.height, row_examples(no_path, path, ("study_id", "path")))
    frame = frame.filter(pl.col("path").is_not_null() & (pl.col("path").str.strip_chars() != ""))

    parsed = frame.with_columns(parse_datetimes("ecg_time").alias("_parsed"))
    bad_time = parsed.filter(pl.col("_parsed").is_null())
    skips.add("record_list.bad_ecg_time", bad_time.height, row_examples(bad_time, path, ("study_id", "ecg_time")))
    frame = (
        parsed.filter(pl.col("_parsed").is_not_null()).with_columns(pl.col("_parsed").alias("ecg_time")).drop("_parsed")
    )

    frame = frame.sort("_row")
    duplicated = frame.filter(pl.col("study_id").is_duplicated() & ~pl.col("study_id").is_first_distinct())
    skips.add("record_list.duplicate_study_id", duplicated.height, row_examples(duplicated, path, ("study_id",)))
    frame = frame.filter(pl.col("study_id").is_first_distinct())
    return frame.select("subject_id", "study_id", "ecg_time", pl.col("path").str.strip_chars(), "_row")


def load_edstays(path: Path, skips: SkipLog, batch_rows: int = DEFAULT_BATCH_ROWS) -> pl.DataFrame:
    """edstays → subject_id, hadm_id, stay_id, intime, outtime, race, gender; impossible stays skipped."""
    frame = read_csv(
        path,
        {
            "subject_id": pl.Int64,
            "hadm_id": pl.Int64,
            "stay_id": pl.Int64,
            "intime": pl.String,
            "outtime": pl.String,
            "race": pl.String,
            "gender": pl.String,
        },
        batch_rows=batch_rows,
        skips=skips,
    )
    no_id = frame.filter(pl.col("subject_id").is_null() | pl.col("stay_id").is_null())
    skips.add("edstays.missing_id", no_id.height, row_examples(no_id, path, ("subject_id", "stay_id")))
    frame = frame.filter(pl.col("subject_id").is_not_null() & pl.col("stay_id").is_not_null())

    parsed = frame.with_columns(parse_datetimes("intime").alias("_in"), parse_datetimes("outtime").alias("_out"))
    bad_in = parsed.filter(pl.col("_in").is_null())
    skips.add("edstays.bad_intime", bad_in.height, row_examples(bad_in, path, ("stay_id", "intime")))
    parsed = parsed.filter(pl.col("_in").is_not_null())
    backwards = parsed.filter(pl.col("_out").is_not_null() & (pl.col("_out") < pl.col("_in")))
    skips.add(
        "edstays.outtime_before_intime",
        backwards.height,
        row_examples(backwards, path, ("stay_id", "intime", "outtime")),
    )
    parsed = parsed.filter(pl.col("_out").is_null() | (pl.col("_out") >= pl.col("_in"))).sort("_row")
    duplicated = parsed.filter(~pl.col("stay_id").is_first_distinct())
    skips.add("edstays.duplicate_stay_id", duplicated.height, row_examples(duplicated, path, ("stay_id",)))
    parsed = parsed.filter(pl.col("stay_id").is_first_distinct())
    return parsed.select(
        "subject_id",
        "hadm_id",
        "stay_id",
        pl.col("_in").alias("intime"),
        pl.col("_out").alias("outtime"),
        "race",
        "gender",
    )


def match_ecgs_to_stays(
    records: pl.DataFrame, stays: pl.DataFrame, window_minutes: float, skips: SkipLog
) -> pl.DataFrame:
    """Attach each ECG to its first ED stay with intime <= ecg_time <= intime + window.

    Returns one row per matched ECG (unmatched ECGs are counted as `cohort.no_matching_stay`),
    ordered by subject_id, ecg_time, study_id — the row order of the store.
    """
    window = pl.duration(microseconds=round(window_minutes * 60e6))
    candidates = records.join(
        stays.select("subject_id", "stay_id", "hadm_id", "intime", "race", "gender"),
        on="subject_id",
        how="inner",
    ).filter((pl.col("intime") <= pl.col("ecg_time")) & (pl.col("ecg_time") <= pl.col("intime") + window))
    n_matches = candidates.group_by("study_id").len()
    several = n_matches.filter(pl.col("len") > 1)
    skips.add(
        "cohort.several_matching_stays",
        several.height,
        (f"study_id {row[0]} matches {row[1]} stays" for row in several.sort("study_id").head(5).iter_rows()),
    )
    matched = candidates.sort("study_id", "intime", "stay_id").unique("study_id", keep="first", maintain_order=True)
    unmatched = records.height - matched.height
    examples = records.join(matched.select("study_id"), on="study_id", how="anti").sort("_row").head(5)
    skips.add(
        "cohort.no_matching_stay",
        unmatched,
        (
            f"record_list row {r['_row']}: study_id {r['study_id']} at {r['ecg_time']}"
            for r in examples.iter_rows(named=True)
        ),
    )
    return matched.sort("subject_id", "ecg_time", "study_id").select(
        "subject_id", "study_id", "stay_id", "hadm_id", "ecg_time", "intime", "race", "gender", "path"
    )
