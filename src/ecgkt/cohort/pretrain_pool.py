"""A pretraining pool: every ECG that has tabular data in its window, as (ECG, tabular) pairs.

The labelled ED cohort (MDS-ED) keeps only ECGs recorded within 90 min of an ED arrival. Joint-
embedding pretraining needs no labels, so it can also use the other ECGs of MIMIC-IV-ECG: those
taken later in an ED stay and those taken outside any ED stay (clinic, ward), provided some tabular
data lies in their window. This module builds that pool **as an ordinary ecgkt store** (same signals,
feature columns, manifest; readable with `ecgkt.store.Store`), plus a sidecar table that says which
pool record is which and whether it has tabular data:

* each ECG that the ED protocol matches keeps its real stay (kind `ed_window`; these are exactly the
  labelled cohort's records, with the same tabular features);
* every other ECG gets a *pseudo-stay* anchored at its own time: arrival = ECG time − 30 min, so the
  builder's windows become [ECG − 30 min, ECG + 60 min] for labs (and ±30 days for omr
  biometrics); kind `in_stay` if the ECG falls inside a real ED stay (arrival ≤ ECG ≤ departure),
  else `outside`. Pseudo-stays have no triage, no ED vital signs and no diagnosis codes (their
  labels in the pool store are all negative and must not be used);
* `pool.parquet` (in the store folder): `row` (store row), `study_id`, `subject_id`, `kind`,
  `has_tabular` (≥ 1 lab or vital value in the window), `labelled_fold` (the subject's fold in the
  labelled store passed as `labelled_store`, −1 if the subject is not in it) and `pool_fold` (the
  pool store's own fold).

Use for pretraining the rows with `has_tabular`, and exclude the subjects of the labelled store's
validation and test folds (`labelled_fold in (n_folds − 2, n_folds − 1)`) so no evaluation patient's
ECG or tabular data is seen during pretraining.

    from ecgkt.cohort.pretrain_pool import build_pretrain_pool, load_pool
    path = build_pretrain_pool(MimicFolders.from_synthetic_root(root), Path("pool"), labelled_store=Path("store"))
    pool = load_pool(path)            # polars frame of pool.parquet
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.matching import load_edstays, load_record_list, match_ecgs_to_stays
from ecgkt.cohort.report import SkipLog
from ecgkt.cohort.spill import write_parquet_atomically
from ecgkt.mimic.layout import MimicFolders
from ecgkt.store import Store

__all__ = [
    "POOL_FILE",
    "PSEUDO_ARRIVAL_BEFORE_MINUTES",
    "PSEUDO_STAY_ID_BASE",
    "build_pretrain_pool",
    "load_pool",
    "pseudo_stays",
]

POOL_FILE = "pool.parquet"
PSEUDO_STAY_ID_BASE = 900_000_000  # MIMIC-IV-ED stay ids are 3xxxxxxx; pseudo-stays never collide
PSEUDO_ARRIVAL_BEFORE_MINUTES = 30.0
PSEUDO_STAY_MINUTES = 90.0
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def pseudo_stays(folders: MimicFolders, config: BuildConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(augmented edstays with the original columns as strings, pool kinds per study_id)."""
    skips = SkipLog()
    records = load_record_list(folders.record_list, skips, config.csv_batch_rows)
    stays = load_edstays(folders.ed_table("edstays"), skips, config.csv_batch_rows)
    matched = match_ecgs_to_stays(records, stays, config.match_window_minutes, SkipLog())
    rest = records.join(matched.select("study_id"), on="study_id", how="anti")
    during = (
        rest.join(stays.select("subject_id", "intime", "outtime"), on="subject_id", how="inner")
        .filter((pl.col("intime") <= pl.col("ecg_time")) & (pl.col("ecg_time") <= pl.col("outtime")))
        .select("study_id")
        .unique()
    )
    rest = rest.sort("subject_id", "ecg_time", "study_id").with_row_index("_i")
    rest = rest.with_columns(
        (pl.col("_i").cast(pl.Int64) + PSEUDO_STAY_ID_BASE).alias("stay_id"),
        pl.col("study_id").is_in(during["study_id"].implode()).alias("_during"),
    )
    demographics = stays.sort("intime").unique("subject_id", keep="first").select("subject_id", "gender", "race")
    before = timedelta(minutes=PSEUDO_ARRIVAL_BEFORE_MINUTES)
    length = timedelta(minutes=PSEUDO_STAY_MINUTES)
    pseudo = rest.join(demographics, on="subject_id", how="left").select(
        pl.col("subject_id").cast(pl.String),
        pl.lit(None, dtype=pl.String).alias("hadm_id"),
        pl.col("stay_id").cast(pl.String),
        (pl.col("ecg_time") - before).dt.strftime(_TIME_FORMAT).alias("intime"),
        (pl.col("ecg_time") - before + length).dt.strftime(_TIME_FORMAT).alias("outtime"),
        "gender",
        "race",
    )
    original = pl.read_csv(folders.ed_table("edstays"), infer_schema_length=0)
    for column in original.columns:
        if column not in pseudo.columns:
            pseudo = pseudo.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    augmented = pl.concat([original, pseudo.select(original.columns)], how="vertical")
    kinds = pl.concat([
        matched.select("study_id", pl.lit("ed_window").alias("kind")),
        rest.select("study_id", pl.when(pl.col("_during")).then(pl.lit("in_stay")).otherwise(pl.lit("outside"))
                    .alias("kind")),
    ])
    return augmented, kinds


def build_pretrain_pool(folders: MimicFolders, out: Path, config: BuildConfig | None = None, *,
                        labelled_store: Path | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Build the pool store at `out` (see the module docstring); returns its path."""
    from ecgkt.cohort.pipeline import build_store

    config = config or BuildConfig()
    augmented, kinds = pseudo_stays(folders, config)
    with tempfile.TemporaryDirectory(prefix="ecgkt-pool-ed-") as tmp:
        ed = Path(tmp)
        for source in folders.ed.iterdir():
            if source.name != "edstays.csv.gz":
                (ed / source.name).symlink_to(source.resolve())
        augmented.write_csv(ed / "edstays.csv")
        with open(ed / "edstays.csv", "rb") as raw, _gzip_out(ed / "edstays.csv.gz") as gz:
            shutil.copyfileobj(raw, gz)
        (ed / "edstays.csv").unlink()
        path = build_store(MimicFolders(folders.ecg, folders.hosp, ed), out, config, overwrite=overwrite,
                           progress=progress)
    store = Store.open(path)
    pool = store.records.select(
        pl.int_range(store.records.height, dtype=pl.Int64).alias("row"), "study_id", "subject_id",
        pl.col("fold").cast(pl.Int64).alias("pool_fold"),
    ).join(kinds, on="study_id", how="left").with_columns(
        pl.Series("has_tabular", _has_tabular(store)), pl.lit(-1, dtype=pl.Int64).alias("labelled_fold"))
    if labelled_store is not None:
        labelled = Store.open(Path(labelled_store)).records.select(
            "subject_id", pl.col("fold").cast(pl.Int64).alias("_lf")).unique("subject_id")
        pool = pool.join(labelled, on="subject_id", how="left").with_columns(
            pl.coalesce(pl.col("_lf"), pl.lit(-1, dtype=pl.Int64)).alias("labelled_fold")).drop("_lf")
    pool = pool.select("row", "study_id", "subject_id", "kind", "has_tabular", "labelled_fold", "pool_fold").sort("row")
    write_parquet_atomically(pool, path / POOL_FILE)
    return path


_VITAL_STEMS = ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp")


def _has_tabular(store: Store) -> NDArray[np.bool_]:
    """True per store row when any lab or vital-sign feature is observed (demographics, biometrics and
    acuity do not count: they exist for every record)."""
    names = [f.name for f in store.manifest.features
             if f.kind == "numeric" and (f.group == "lab" or f.name.startswith(_VITAL_STEMS))]
    features = store.raw_features()
    if not names:
        return np.zeros(features.height, dtype=bool)
    present = features.select(pl.any_horizontal([pl.col(c).is_not_null() & ~pl.col(c).is_nan() for c in names]))
    return present.to_series().fill_null(False).to_numpy().astype(bool)


def _gzip_out(path: Path) -> gzip.GzipFile:
    return gzip.GzipFile(path, "wb", compresslevel=6)


def load_pool(store_path: Path) -> pl.DataFrame:
    """The sidecar of a pool store (see the module docstring)."""
    path = Path(store_path) / POOL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a pretraining pool (build it with build_pretrain_pool)")
    return pl.read_parquet(path)
