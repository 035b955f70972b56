"""`build_store`: three MIMIC folders → one dataset store, in three resumable stages.

A. tables   — match ECGs to ED stays, load and filter the MIMIC tables, stream labevents, compute
              every record's raw features, candidate lab values and diagnosis codes. Cached as
              Parquet in the staging folder, so a resumed build does not stream labevents again.
              Out of core: candidates are cut into chunks (`spill.candidate_chunks`), labevents and
              vitals rows are spilled to per-chunk Parquet parts, and features and lab values are
              computed and cached one chunk at a time, so no whole-cohort feature frame exists.
B. signals  — parallel WFDB ingestion into `signals.npy`, chunk by chunk with progress markers.
C. finalise — drop records whose signal was skipped, select diagnosis labels by count, assign the
              folds, select lab labels on the validation/test folds, compute training-fold
              statistics, write tables, manifest and reports, then commit (rename into place).
              The feature table is streamed from the cached parts to the store part by part, and
              its statistics are computed one column at a time from the written file.

Everything before commit happens in `<out>.partial/`; its `.build/` folder holds the cache and
markers and a key (config + source fingerprints) so that a staging folder left by a build with
other inputs or settings is discarded instead of being resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from rich.console import Console

from ecgkt import __version__
from ecgkt.atomic_files import write_text_atomically
from ecgkt.cohort import features as feat
from ecgkt.cohort import icd, lab_labels
from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.folds import assign_folds, demographic_strata
from ecgkt.cohort.labevents import KEPT_ROWS_SCHEMA, stream_labevents
from ecgkt.cohort.matching import load_edstays, load_record_list, match_ecgs_to_stays
from ecgkt.cohort.progress import BuildProgress
from ecgkt.cohort.protocol import clean_lab_rows
from ecgkt.cohort.report import SkipLog, cohort_report_markdown
from ecgkt.cohort.signals import OK, ingest_signals, marker_statuses
from ecgkt.cohort.sources import TABLES, BuildInputError, SourcePaths, fingerprint, resolve_sources
from ecgkt.cohort.spill import CHUNK_COLUMN, ChunkSpill, candidate_chunks, chunk_bounds, write_parquet_atomically
from ecgkt.cohort.tables import (
    load_d_labitems,
    load_patients,
    stream_omr,
    stream_triage,
    stream_vitalsign,
)
from ecgkt.cohort.write_errors import (
    is_write_failure,
    naming,
    preallocate,
    remove_temporary_files,
    write_error,
)
from ecgkt.mimic.labs import LAB_BY_ITEMID
from ecgkt.mimic.layout import ECG_SAMPLING_RATE_HZ, MimicFolders
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.preprocess import PreprocessSpec
from ecgkt.store import (
    DIAGNOSES_FILE,
    FEATURES_FILE,
    LAB_LABELS_FILE,
    MANIFEST_FILE,
    RECORDS_FILE,
    SIGNALS_FILE,
    STORE_FORMAT_VERSION,
    FeatureSpec,
    FoldSpec,
    PreprocessingSpec,
    StoreManifest,
    StoreWriter,
)

STATE_DIR = ".build"
BUILD_REPORT_FILE = "build_report.json"
COHORT_REPORT_FILE = "cohort_report.md"


VITAL_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "stay_id": pl.Int64(),
    "charttime": pl.Datetime("us"),
    "name": pl.String(),
    "value": pl.Float64(),
}


@dataclass
class TablesStage:
    """Output of stage A (also its on-disk cache, in `folder`).

    The per-record tables too large to hold — raw features and closest lab values — stay on disk as
    one Parquet part per candidate chunk (`feature_part(k)`, `closest_part(k)`; part k holds the
    candidates of chunk k in `_cand` order), written by the stage itself before `save`.
    """

    folder: Path
    candidates: pl.DataFrame  # _cand, subject_id, study_id, stay_id, hadm_id, ecg_time, intime, age, gender, path
    n_chunks: int
    stay_labels: pl.DataFrame  # stay_id, label
    reference_ranges: dict[str, tuple[float | None, float | None]]
    title_fallback: dict[str, str]
    skips: SkipLog
    info: dict[str, object]

    _FRAMES = ("candidates", "stay_labels")

    def feature_part(self, chunk: int) -> Path:
        return feature_part_path(self.folder, chunk)

    def closest_part(self, chunk: int) -> Path:
        return closest_part_path(self.folder, chunk)

    def save(self) -> None:
        for name in self._FRAMES:
            write_parquet_atomically(getattr(self, name), self.folder / f"{name}.parquet")
        payload = {
            "n_chunks": self.n_chunks,
            "reference_ranges": self.reference_ranges,
            "title_fallback": self.title_fallback,
            "skips": self.skips.to_json(),
            "info": self.info,
        }
        tmp = self.folder / ".done.tmp"
        tmp.write_text(json.dumps(payload, default=str))
        os.replace(tmp, self.folder / "done.json")  # written last: its presence means the cache is complete

    @classmethod
    def load(cls, folder: Path) -> TablesStage | None:
        if not (folder / "done.json").is_file():
            return None
        payload = json.loads((folder / "done.json").read_text())
        frames = {name: pl.read_parquet(folder / f"{name}.parquet") for name in cls._FRAMES}
        return cls(
            folder=folder,
            n_chunks=int(payload["n_chunks"]),
            **frames,
            reference_ranges={k: (v[0], v[1]) for k, v in payload["reference_ranges"].items()},
            title_fallback=payload["title_fallback"],
            skips=SkipLog.from_json(payload["skips"]),
            info=payload["info"],
        )


def feature_part_path(folder: Path, chunk: int) -> Path:
    return folder / "features" / f"part_{chunk:06d}.parquet"


def closest_part_path(folder: Path, chunk: int) -> Path:
    return folder / "closest" / f"part_{chunk:06d}.parquet"


def build_store(
    folders: MimicFolders,
    out: Path,
    config: BuildConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
    console: Console | None = None,
    on_signal_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Build (or resume building) the store at `out`; returns the committed store path.

    Bad input raises `BuildInputError`; a failed write (a full disk above all) raises
    `BuildWriteError` naming the path, with `OUT.partial` kept without temporary files so that the
    same call resumes once the cause is fixed (ecgkt/cohort/write_errors.py).
    """
    config = config or BuildConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise BuildInputError(f"{out}: already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    sources = resolve_sources(folders)
    fingerprints = {
        f"{TABLES[key].module}/{path.name}": fingerprint(path) for key, path in sorted(sources.tables.items())
    }

    staging = out.with_name(out.name + ".partial")  # StoreWriter's staging folder
    try:
        return _build(
            folders, out, config, sources, fingerprints, overwrite, progress, console, on_signal_chunk, started
        )
    except (OSError, pl.exceptions.PolarsError) as error:
        if not is_write_failure(error):
            raise
        remove_temporary_files(staging)
        filename = getattr(error, "filename", None)
        target = Path(str(filename)) if filename else staging
        if not any(_inside(target, folder) for folder in (staging, out, out.with_name(out.name + ".old"))):
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise BuildInputError(f"{target}: cannot be read ({reason})") from error
        raise write_error(error, target, staging) from error


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _build(
    folders: MimicFolders,
    out: Path,
    config: BuildConfig,
    sources: SourcePaths,
    fingerprints: dict[str, str],
    overwrite: bool,
    progress: bool,
    console: Console | None,
    on_signal_chunk: Callable[[int], None] | None,
    started: float,
) -> Path:
    """`build_store` after the inputs are checked; write failures propagate as they happen."""
    writer = StoreWriter(out)
    state = writer.staging / STATE_DIR
    resume_key = _resume_key(config, fingerprints)
    key_file = state / "key.json"
    if _stored_key(key_file) != resume_key:
        shutil.rmtree(writer.staging)  # leftovers of a build with other inputs or settings
        writer = StoreWriter(out)
        state.mkdir(parents=True)
        payload = {"key": resume_key, "config": config.model_dump(), "sources": fingerprints}
        with naming(key_file):
            write_text_atomically(key_file, json.dumps(payload))
        resumed = False
    else:
        resumed = True

    with BuildProgress(progress, console) as ui:
        tables = TablesStage.load(state / "tables")
        if tables is None:
            tables = _tables_stage(sources, config, ui, state / "tables")
            with naming(state / "tables" / "done.json"):
                tables.save()
        n_candidates = tables.candidates.height
        if n_candidates == 0:
            raise BuildInputError(
                f"{sources['record_list']}: no ECG falls within {config.match_window_minutes:g} min after the "
                f"intime of an ED stay in {sources['edstays']}; the emergency-department cohort is empty"
            )
        markers = _signals_stage(tables.candidates, sources, writer, state, config, ui, on_signal_chunk)
        with ui.step("Writing the store"):
            _finalise(tables, markers, writer, config, sources, fingerprints, ui, resumed, started)
    shutil.rmtree(state)
    return writer.commit(overwrite=overwrite)


def _stored_key(key_file: Path) -> str | None:
    """The resume key of an earlier build's staging folder; None if absent or unreadable (then discarded)."""
    try:
        return str(json.loads(key_file.read_text()).get("key"))
    except (OSError, ValueError, AttributeError):
        return None


def _resume_key(config: BuildConfig, fingerprints: dict[str, str]) -> str:
    payload = json.dumps(
        {
            "config": config.resume_key_fields(),
            "sources": fingerprints,
            "ecgkt": __version__,
            "format": STORE_FORMAT_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# ---- stage A -------------------------------------------------------------------------------------


def _tables_stage(sources: SourcePaths, config: BuildConfig, ui: BuildProgress, folder: Path) -> TablesStage:
    if folder.exists():
        shutil.rmtree(folder)  # parts of an interrupted earlier stage A: it is redone from scratch
    folder.mkdir(parents=True)
    skips = SkipLog()
    batch_rows = config.csv_batch_rows
    info: dict[str, object] = {}
    with ui.step("Matching ECGs to ED stays"):
        records = load_record_list(sources["record_list"], skips, batch_rows)
        stays = load_edstays(sources["edstays"], skips, batch_rows)
        cohort = match_ecgs_to_stays(records, stays, config.match_window_minutes, skips).with_row_index("_cand")
        cohort = cohort.with_columns(pl.col("_cand").cast(pl.Int64))
        info.update(record_list_rows=records.height, edstays_rows=stays.height)
        del records, stays

    chunks = candidate_chunks(cohort["stay_id"], config.statistics_chunk_stays)
    stay_chunks = pl.DataFrame({"stay_id": cohort["stay_id"], CHUNK_COLUMN: chunks}).unique(maintain_order=True)
    with ui.step("Reading patients, triage, vitals, omr"):
        patients = load_patients(sources["patients"], cohort["subject_id"], skips, batch_rows)
        cohort = _demographics(cohort, patients, skips)
        del patients
        stay_ids = cohort["stay_id"]
        vitals = ChunkSpill(folder / "vitals_spill", stay_chunks, VITAL_ROWS_SCHEMA, config.spill_rows)
        # batch by batch: the cohort's vitalsign rows are never all in memory
        stream_vitalsign(
            sources["vitalsign"], stay_ids, skips, batch_rows, lambda long: vitals.add(_timed_vitals(long))
        )
        # triage batch by batch too: only (stay_id, acuity) is kept; its vitals follow vitalsign's in the spill
        triage = stream_triage(
            sources["triage"],
            cohort.select("stay_id", pl.col("intime").alias("charttime")).unique("stay_id", maintain_order=True),
            skips,
            batch_rows,
            (lambda long: vitals.add(_timed_vitals(long))) if config.include_triage_vitals else None,
        )
        vitals.flush()
        # omr parsed per batch, keeping only rows within the window of one of the subject's ECGs
        ecg_dates = cohort.select("subject_id", pl.col("ecg_time").dt.date().alias("_ecg_date")).unique()
        omr = stream_omr(sources["omr"], ecg_dates, config.biometrics_window_days, skips, batch_rows)
        del ecg_dates
        biometrics = feat.closest_biometrics(cohort, omr, config.biometrics_window_days).sort("_cand")
        if not biometrics["_cand"].equals(cohort["_cand"]):  # sliced per chunk below: one row per candidate
            raise RuntimeError("closest_biometrics must return exactly one row per candidate")
        del omr
        d_labitems = load_d_labitems(sources["d_labitems"], batch_rows, skips)
        if d_labitems.height:  # empty: nothing to check against (warned below), every row is used anyway
            _check_d_labitems(d_labitems, sources, skips)

    cohort_stays = cohort.select("subject_id", "stay_id", "intime").unique("stay_id").sort("stay_id")
    labs = ChunkSpill(folder / "labevents_spill", stay_chunks, KEPT_ROWS_SCHEMA, config.spill_rows)
    with ui.step("Streaming labevents (rows)") as advance:
        extract = stream_labevents(
            sources["labevents"],
            cohort_stays,
            known_itemids=set(d_labitems["itemid"].drop_nulls().to_list()) if d_labitems.height else None,
            before_minutes=config.lab_label_window_minutes,
            after_minutes=max(
                config.feature_window_minutes, config.match_window_minutes + config.lab_label_window_minutes
            ),
            skips=skips,
            batch_rows=batch_rows,
            on_batch=advance,
            sink=labs.add,
        )
        labs.flush()
        info.update(
            labevents_rows=extract.rows_read,
            labevents_protocol_rows=extract.rows_protocol,
            labevents_rows_kept=extract.rows_kept,
            labevents_seconds=round(extract.seconds, 2),
        )
        del cohort_stays, d_labitems

    with ui.step("Features, lab values and diagnosis codes"):
        bounds = chunk_bounds(chunks)
        for chunk, (lo, hi) in enumerate(bounds):
            part = cohort.slice(lo, hi - lo)
            lab_rows = clean_lab_rows(labs.read(chunk), config.lab_outlier_rule).sort(
                "stay_id", "itemid", "charttime", "valuenum")
            features = feat.assemble_features(
                part,
                triage,
                vitals.read(chunk),
                lab_rows,
                biometrics.slice(lo, hi - lo),
                config.feature_window_minutes,
                chunk_stays=config.statistics_chunk_stays,
            )
            write_parquet_atomically(features, feature_part_path(folder, chunk))
            closest = lab_labels.closest_values(part, lab_rows, config.lab_label_window_minutes)
            write_parquet_atomically(closest, closest_part_path(folder, chunk))
            del part, lab_rows, features, closest
        shutil.rmtree(labs.folder)
        shutil.rmtree(vitals.folder)
        del triage, biometrics
        stay_labels = icd.load_stay_codes(
            sources["ed_diagnosis"],
            sources["diagnoses_icd"],
            cohort.select("stay_id", "hadm_id").unique("stay_id"),
            skips,
            batch_rows,
        )
        seen = set(stay_labels["label"].unique().to_list())
        fallback = {
            c: t for c, t in icd.load_icd10_titles(sources["d_icd_diagnoses"], batch_rows, skips).items() if c in seen
        }

    candidates = cohort.select(
        "_cand", "subject_id", "study_id", "stay_id", "hadm_id", "ecg_time", "intime", "age", "gender", "path"
    )
    warnings = empty_table_warnings(sources, skips)
    for warning in warnings:
        ui.warn(warning)
    info["warnings"] = warnings
    return TablesStage(folder, candidates, len(bounds), stay_labels, extract.reference_ranges, fallback, skips, info)


# What a build loses when a table has no usable row (the build goes on: each is a legal, if poor, input).
EMPTY_TABLE_CONSEQUENCES: dict[str, str] = {
    "record_list": "no ECG: the cohort is empty",
    "edstays": "no ED stay: the cohort is empty",
    "triage": "acuity and triage vitals are missing for every record",
    "vitalsign": "the vital-sign statistics are missing for every record",
    "ed_diagnosis": "stays not admitted get no diagnosis code (all their diagnosis targets are 0)",
    "patients": "age is unknown for every record, gender comes from edstays",
    "labevents": "every lab feature is missing and no lab-abnormality label can be made",
    "d_labitems": "labevents itemids cannot be checked (every protocol lab is still used by its itemid)",
    "omr": "height, weight and BMI are missing for every record",
    "diagnoses_icd": "admitted stays fall back to their ED diagnosis codes",
    "d_icd_diagnoses": "titles come from simple_icd_10_cm only",
}


def empty_table_warnings(sources: SourcePaths, skips: SkipLog) -> list[str]:
    """One warning per required table that gave no usable data row (header only, or every row bad)."""
    warnings = []
    for key, path in sources.tables.items():
        if skips.rows_read.get(str(path), 0) == 0:
            consequence = EMPTY_TABLE_CONSEQUENCES.get(key, "its information is missing")
            warnings.append(f"{path}: no usable data row (empty table); {consequence}")
    return warnings


def _timed_vitals(long: pl.DataFrame) -> pl.DataFrame:
    """Vitals of both sources with one timestamp type, so their spilled parts stack."""
    return long.with_columns(pl.col("charttime").cast(pl.Datetime("us")))


def _demographics(cohort: pl.DataFrame, patients: pl.DataFrame, skips: SkipLog) -> pl.DataFrame:
    """Age at the ECG (anchor_age + years since anchor_year) and gender (patients, else edstays)."""
    joined = cohort.join(patients.rename({"gender": "_p_gender"}), on="subject_id", how="left")
    missing = joined.filter(pl.col("anchor_age").is_null())
    skips.add(
        "patients.missing",
        missing.height,
        (f"subject_id {s}" for s in missing["subject_id"].unique().sort().head(5).to_list()),
    )
    ed_gender = pl.col("gender").str.strip_chars().str.to_uppercase()
    return joined.with_columns(
        (pl.col("anchor_age") + (pl.col("ecg_time").dt.year().cast(pl.Float64) - pl.col("anchor_year"))).alias("age"),
        pl.coalesce(pl.col("_p_gender"), pl.when(ed_gender.is_in(["F", "M"])).then(ed_gender)).alias("gender"),
    ).drop("_p_gender", "anchor_age", "anchor_year")


def _check_d_labitems(d_labitems: pl.DataFrame, sources: SourcePaths, skips: SkipLog) -> None:
    labels = dict(zip(d_labitems["itemid"].to_list(), d_labitems["label"].to_list(), strict=True))
    absent = [item for itemid, item in LAB_BY_ITEMID.items() if itemid not in labels]
    skips.add(
        "d_labitems.missing_protocol_item",
        len(absent),
        (f"{sources['d_labitems'].name}: itemid {item.itemid} ({item.name})" for item in absent),
    )
    renamed = [
        (i, labels[i]) for i, item in LAB_BY_ITEMID.items() if i in labels and (labels[i] or "").strip() != item.label
    ]
    skips.add(
        "d_labitems.label_mismatch",
        len(renamed),
        (f"itemid {i}: {label!r}, expected {LAB_BY_ITEMID[i].label!r}" for i, label in renamed),
    )


# ---- stage B -------------------------------------------------------------------------------------


def _signals_stage(
    candidates: pl.DataFrame,
    sources: SourcePaths,
    writer: StoreWriter,
    state: Path,
    config: BuildConfig,
    ui: BuildProgress,
    on_signal_chunk: Callable[[int], None] | None,
) -> list[dict[str, object]]:
    n = candidates.height
    marker_dir = state / "signals"
    chunk = config.signal_chunk_records
    n_chunks = (n + chunk - 1) // chunk
    if marker_dir.is_dir() and len(list(marker_dir.glob("chunk_*.json"))) == n_chunks:
        # all chunks done (the array may already be compacted): never reopen it with the candidate shape
        return [json.loads((marker_dir / f"chunk_{i:06d}.json").read_text()) for i in range(n_chunks)]
    signals_path = writer.staging / SIGNALS_FILE
    fresh = not signals_path.exists()
    with naming(signals_path):
        memmap = writer.signals(n, PreprocessSpec().num_samples)
        del memmap
        try:
            preallocate(signals_path, fresh=fresh)  # a full disk: ENOSPC now, not SIGBUS in a worker
        except OSError:
            if fresh:
                signals_path.unlink(missing_ok=True)  # give the space back; recreated on resume
            raise
    paths = candidates["path"].to_list()
    bases = [str(sources.ecg_root / p) for p in paths]
    with ui.step("Reading WFDB signals (records)", total=n) as advance:
        return ingest_signals(
            bases,
            paths,
            writer.staging / SIGNALS_FILE,
            marker_dir,
            chunk_records=chunk,
            workers=config.workers,
            on_records=advance,
            on_chunk_done=on_signal_chunk,
        )


# ---- stage C -------------------------------------------------------------------------------------


@dataclass
class Labels:
    """Targets and folds of the final records (stage C)."""

    diagnosis_names: list[str]
    diagnosis: sp.csr_matrix  # records × kept codes, float32 0/1 (sparse: densified in row slices only)
    lab_names: list[str]
    lab: np.ndarray  # records × kept lab labels, float32 0/1/NaN
    lab_dropped: list[str]
    folds: np.ndarray
    min_label_count: int
    codes_seen: int


def _finalise(
    tables: TablesStage,
    markers: list[dict[str, object]],
    writer: StoreWriter,
    config: BuildConfig,
    sources: SourcePaths,
    fingerprints: dict[str, str],
    ui: BuildProgress,
    resumed: bool,
    started: float,
) -> None:
    valid, skips = _signal_outcomes(tables, markers)
    records = tables.candidates.filter(pl.Series(valid)).with_row_index("row")
    records = records.with_columns(pl.col("row").cast(pl.Int64))
    _compact_signals(writer.staging / SIGNALS_FILE, valid, config.signal_chunk_records)
    labels = _labels_and_folds(records, tables, valid, config)

    with naming(writer.staging / RECORDS_FILE):
        writer.write_table(RECORDS_FILE, _records_table(records, labels.folds))
    with naming(writer.staging / FEATURES_FILE):
        writer.write_table_batches(FEATURES_FILE, _valid_feature_parts(tables, valid, config.table_row_group_rows))
    specs, observed = feat.feature_specs_from_parquet(
        writer.staging / FEATURES_FILE, np.isin(labels.folds, config.train_folds), feat.feature_catalogue()
    )
    with naming(writer.staging / DIAGNOSES_FILE):
        _write_sparse_labels(
            writer, DIAGNOSES_FILE, labels.diagnosis_names, labels.diagnosis, config.table_row_group_rows
        )
    with naming(writer.staging / LAB_LABELS_FILE):
        writer.write_table(LAB_LABELS_FILE, _label_frame(labels.lab_names, labels.lab))
    manifest = _manifest(records.height, labels, specs, tables, config, fingerprints)
    with naming(writer.staging / MANIFEST_FILE):
        writer.write_manifest(manifest)

    counts = {
        "ECGs in record_list (valid rows)": int(str(tables.info.get("record_list_rows", 0))),
        "ECGs matched to an ED stay": len(valid),
        "ECGs in the store": records.height,
        "patients": records["subject_id"].n_unique(),
        "ED stays": records["stay_id"].n_unique(),
        "admitted stays": records.filter(pl.col("hadm_id").is_not_null())["stay_id"].n_unique(),
        "diagnosis labels": len(labels.diagnosis_names),
        "lab-abnormality labels": len(labels.lab_names),
        "tabular features": len(specs),
    }
    saved = tables.info.get("warnings", [])
    warnings = [str(w) for w in saved] if isinstance(saved, list) else []
    report = {
        "ecgkt_version": __version__,
        "warnings": warnings,
        "created_utc": manifest.created_utc,
        "resumed": resumed,
        "seconds": round(time.perf_counter() - started, 2),
        "counts": counts,
        "skips": skips.to_json(),
        "labevents": tables.info,
        "timings_seconds": {k: round(v, 2) for k, v in ui.timings.items()},
        "min_label_count": labels.min_label_count,
        "diagnosis_codes_seen": labels.codes_seen,
        "lab_labels_dropped_by_fold_rule": labels.lab_dropped,
        "sources": fingerprints,
        "source_paths": {f"{TABLES[key].module}/{path.name}": str(path) for key, path in sources.tables.items()},
    }
    with naming(writer.staging / BUILD_REPORT_FILE):
        writer.write_json(BUILD_REPORT_FILE, report)
    markdown = cohort_report_markdown(
        counts=counts,
        fold_sizes=manifest.folds.sizes,
        diagnosis_labels=labels.diagnosis_names,
        diagnosis_titles=manifest.diagnosis_titles,
        diagnosis_targets=labels.diagnosis,
        lab_labels=labels.lab_names,
        lab_targets=labels.lab,
        feature_names=[s.name for s in specs],
        feature_groups=[s.group for s in specs],
        feature_observed=observed,
        skips=skips,
        min_label_count=labels.min_label_count,
        warnings=warnings,
    )
    with naming(writer.staging / COHORT_REPORT_FILE):
        writer.write_text(COHORT_REPORT_FILE, markdown)


def _signal_outcomes(tables: TablesStage, markers: list[dict[str, object]]) -> tuple[np.ndarray, SkipLog]:
    """Which candidates have a usable signal, and all counted events (tables + signals)."""
    skips = SkipLog()
    skips.merge(tables.skips)
    statuses: list[str] = []
    for marker in markers:
        statuses += marker_statuses(marker)
        events = marker["events"]
        assert isinstance(events, dict)
        for key, (count, examples) in events.items():
            skips.add(key, count, examples)
    valid = np.array([s == OK for s in statuses], dtype=bool)
    if not valid.any():
        raise BuildInputError(
            f"none of the {len(valid)} matched ECG records could be read; see the signal.* counts: {skips.to_json()}"
        )
    return valid, skips


def _valid_feature_parts(tables: TablesStage, valid: np.ndarray, group_rows: int) -> Iterator[pl.DataFrame]:
    """The cached feature parts in candidate order, without the records whose signal was skipped,
    regrouped into batches of at least `group_rows` rows (the store's row groups).

    Why regroup: the Parquet writer keeps the metadata of every column chunk (≈ 1 KiB each, 466 per
    row group) until it closes the file, so one row group per chunk part would cost memory per
    record when chunks are small; `group_rows` trades that against the batch held (1.9 KiB per row).
    """
    offset = 0
    pending: list[pl.DataFrame] = []
    pending_rows = 0
    for chunk in range(tables.n_chunks):
        part = pl.read_parquet(tables.feature_part(chunk))
        kept = part.filter(pl.Series(valid[offset : offset + part.height]))
        offset += part.height
        pending.append(kept)
        pending_rows += kept.height
        if pending_rows >= group_rows:
            yield pl.concat(pending)
            pending, pending_rows = [], 0
    if pending:
        yield pl.concat(pending)
    if offset != len(valid):
        raise BuildInputError(f"{tables.folder}: the cached feature parts hold {offset} rows, expected {len(valid)}")


def _closest_parts(tables: TablesStage, valid: np.ndarray) -> Iterator[pl.DataFrame]:
    """The cached closest lab values with `_cand` renumbered to store rows (skipped records dropped)."""
    row_of = np.cumsum(valid) - 1  # store row of each valid candidate
    for chunk in range(tables.n_chunks):
        part = pl.read_parquet(tables.closest_part(chunk))
        cands = part["_cand"].to_numpy()
        keep = valid[cands]
        yield pl.DataFrame(
            {
                "_cand": row_of[cands[keep]].astype(np.int64),
                "itemid": part["itemid"].filter(pl.Series(keep)),
                "value": part["value"].filter(pl.Series(keep)),
            }
        )


def _labels_and_folds(records: pl.DataFrame, tables: TablesStage, valid: np.ndarray, config: BuildConfig) -> Labels:
    """Diagnosis labels by count, candidate lab labels, folds, then lab labels by the val/test rule."""
    n = records.height
    all_codes, dx_all = icd.label_matrix(records["stay_id"], tables.stay_labels)
    min_count = config.effective_min_label_count(n)
    dx_names, dx = icd.frequent_columns(all_codes, dx_all, min_count)
    del dx_all

    lab_names_all, lab_all = lab_labels.label_codes(_closest_parts(tables, valid), tables.reference_ranges, n)

    strata = demographic_strata(
        records["age"].cast(pl.Float64).fill_null(np.nan).to_numpy(), records["gender"].to_numpy()
    )
    targets = sp.hstack([dx, _positives(lab_all), sp.csr_matrix(strata)], format="csr")
    folds = assign_folds(records["subject_id"].to_numpy(), targets, config.n_folds, config.seed)
    kept = lab_labels.select_lab_labels(
        lab_names_all,
        lab_all,
        folds,
        (config.val_fold, config.test_fold),
        config.lab_label_min_positives,
        config.lab_label_min_negatives,
    )
    kept_set = set(kept)
    return Labels(
        diagnosis_names=dx_names,
        diagnosis=dx,
        lab_names=[lab_names_all[j] for j in kept],
        lab=lab_labels.codes_to_targets(lab_all[:, kept]),
        lab_dropped=[name for j, name in enumerate(lab_names_all) if j not in kept_set],
        folds=folds,
        min_label_count=min_count,
        codes_seen=len(all_codes),
    )


def _records_table(records: pl.DataFrame, folds: np.ndarray) -> pl.DataFrame:
    return records.with_columns(pl.Series("fold", folds, dtype=pl.Int64)).select(
        "row",
        "subject_id",
        "study_id",
        "stay_id",
        "hadm_id",
        pl.col("ecg_time").cast(pl.Datetime("us")),
        pl.col("intime").cast(pl.Datetime("us")),
        "fold",
        pl.col("age").cast(pl.Float64),
        "gender",
        "path",
    )


def _manifest(
    n: int,
    labels: Labels,
    specs: list[FeatureSpec],
    tables: TablesStage,
    config: BuildConfig,
    fingerprints: dict[str, str],
) -> StoreManifest:
    preprocess = PreprocessSpec()
    return StoreManifest(
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        n_records=n,
        preprocessing=PreprocessingSpec(
            sampling_rate_hz=preprocess.sampling_rate_hz,
            record_seconds=preprocess.record_seconds,
            clip_mv=preprocess.clip_mv,
            leads=list(CANONICAL_LEADS),
            source_sampling_rate_hz=ECG_SAMPLING_RATE_HZ,
        ),
        diagnosis_labels=labels.diagnosis_names,
        diagnosis_titles=icd.code_titles(labels.diagnosis_names, tables.title_fallback),
        lab_labels=labels.lab_names,
        lab_reference_ranges=tables.reference_ranges,
        features=specs,
        folds=FoldSpec(
            n_folds=config.n_folds,
            train=config.train_folds,
            val=[config.val_fold],
            test=[config.test_fold],
            sizes=np.bincount(labels.folds, minlength=config.n_folds).tolist(),
            seed=config.seed,
        ),
        sources=fingerprints,
        build_parameters=config.model_dump(),
    )


def _positives(codes: np.ndarray) -> sp.csr_matrix:
    """Sparse float32 1.0 where a label-code (or 0/1/NaN target) matrix is 1: what
    csr_matrix(nan_to_num(targets)) holds, without a dense float copy."""
    rows, cols = np.nonzero(codes == 1)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=codes.shape)


def _write_sparse_labels(
    writer: StoreWriter, name: str, names: list[str], matrix: sp.csr_matrix, group_rows: int
) -> None:
    """The label table from a sparse matrix, densified `group_rows` rows at a time (one row group each)."""
    if not names:
        writer.write_table(name, _label_frame(names, np.zeros((matrix.shape[0], 0), dtype=np.float32)))
        return
    step = group_rows
    slices = range(0, max(1, matrix.shape[0]), step)
    writer.write_table_batches(
        name, (_label_frame(names, matrix[lo : lo + step].toarray().astype(np.float32, copy=False)) for lo in slices)
    )


def _label_frame(names: list[str], matrix: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame([pl.Series(name, matrix[:, j], dtype=pl.Float32) for j, name in enumerate(names)])


def _compact_signals(path: Path, valid: np.ndarray, chunk: int) -> None:
    """Drop the rows of skipped records from signals.npy (only when some were skipped)."""
    source = np.load(path, mmap_mode="r")
    if source.shape[0] == int(valid.sum()):
        return  # nothing skipped, or already compacted by an interrupted earlier finalise
    keep = np.flatnonzero(valid)
    tmp = path.with_name(".signals.compact.npy")
    try:
        with naming(tmp):
            target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keep), *source.shape[1:]))
            preallocate(tmp, fresh=True)  # ENOSPC as an error, never SIGBUS while copying
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    for lo in range(0, len(keep), chunk):
        target[lo : lo + chunk] = source[keep[lo : lo + chunk]]
    target.flush()
    del target, source
    os.replace(tmp, path)
