"""`build_store`: three MIMIC folders → one dataset store, in three resumable stages.

A. tables   — match ECGs to ED stays, load and filter the MIMIC tables, stream labevents, compute
              every record's raw features, candidate lab values and diagnosis codes. Cached as
              Parquet in the staging folder, so a resumed build does not stream labevents again.
B. signals  — parallel WFDB ingestion into `signals.npy`, chunk by chunk with progress markers.
C. finalise — drop records whose signal was skipped, select diagnosis labels by count, assign the
              folds, select lab labels on the validation/test folds, compute training-fold
              statistics, write tables, manifest and reports, then commit (rename into place).

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from rich.console import Console

from ecgkt import __version__
from ecgkt.build import features as feat
from ecgkt.build import icd, lab_labels
from ecgkt.build.config import BuildConfig
from ecgkt.build.folds import assign_folds, demographic_strata
from ecgkt.build.labevents import stream_labevents
from ecgkt.build.matching import load_edstays, load_record_list, match_ecgs_to_stays
from ecgkt.build.progress import BuildProgress
from ecgkt.build.report import SkipLog, cohort_report_markdown
from ecgkt.build.signals import OK, ingest_signals, marker_statuses
from ecgkt.build.sources import TABLES, BuildInputError, SourcePaths, fingerprint, resolve_sources
from ecgkt.build.tables import (
    clean_vitals,
    load_d_labitems,
    load_omr,
    load_patients,
    load_triage,
    load_vitalsign,
)
from ecgkt.mimic.labs import LAB_BY_ITEMID
from ecgkt.mimic.layout import ECG_SAMPLING_RATE_HZ, MimicFolders
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.preprocess import PreprocessSpec
from ecgkt.store import (
    DIAGNOSES_FILE,
    FEATURES_FILE,
    LAB_LABELS_FILE,
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


@dataclass
class TablesStage:
    """Output of stage A (also its on-disk cache)."""

    candidates: pl.DataFrame  # _cand, subject_id, study_id, stay_id, hadm_id, ecg_time, intime, age, gender, path
    features: pl.DataFrame  # catalogue columns, row i = candidate i
    closest_labs: pl.DataFrame  # _cand, itemid, value
    stay_labels: pl.DataFrame  # stay_id, label
    reference_ranges: dict[str, tuple[float | None, float | None]]
    title_fallback: dict[str, str]
    skips: SkipLog
    info: dict[str, object]

    _FRAMES = ("candidates", "features", "closest_labs", "stay_labels")

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in self._FRAMES:
            getattr(self, name).write_parquet(folder / f"{name}.parquet")
        payload = {
            "reference_ranges": self.reference_ranges,
            "title_fallback": self.title_fallback,
            "skips": self.skips.to_json(),
            "info": self.info,
        }
        tmp = folder / ".done.tmp"
        tmp.write_text(json.dumps(payload, default=str))
        os.replace(tmp, folder / "done.json")  # written last: its presence means the cache is complete

    @classmethod
    def load(cls, folder: Path) -> TablesStage | None:
        if not (folder / "done.json").is_file():
            return None
        payload = json.loads((folder / "done.json").read_text())
        frames = {name: pl.read_parquet(folder / f"{name}.parquet") for name in cls._FRAMES}
        return cls(
            **frames,
            reference_ranges={k: (v[0], v[1]) for k, v in payload["reference_ranges"].items()},
            title_fallback=payload["title_fallback"],
            skips=SkipLog.from_json(payload["skips"]),
            info=payload["info"],
        )


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
    """Build (or resume building) the store at `out`; returns the committed store path."""
    config = config or BuildConfig()
    out = Path(out)
    if out.exists() and not overwrite:
        raise BuildInputError(f"{out}: already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    sources = resolve_sources(folders)
    fingerprints = {
        f"{TABLES[key].module}/{path.name}": fingerprint(path) for key, path in sorted(sources.tables.items())
    }

    writer = StoreWriter(out)
    state = writer.staging / STATE_DIR
    resume_key = _resume_key(config, fingerprints)
    key_file = state / "key.json"
    if not key_file.is_file() or json.loads(key_file.read_text()).get("key") != resume_key:
        shutil.rmtree(writer.staging)  # leftovers of a build with other inputs or settings
        writer = StoreWriter(out)
        state.mkdir(parents=True)
        key_file.write_text(json.dumps({"key": resume_key, "config": config.model_dump(), "sources": fingerprints}))
        resumed = False
    else:
        resumed = True

    with BuildProgress(progress, console) as ui:
        tables = TablesStage.load(state / "tables")
        if tables is None:
            tables = _tables_stage(sources, config, ui)
            tables.save(state / "tables")
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


def _tables_stage(sources: SourcePaths, config: BuildConfig, ui: BuildProgress) -> TablesStage:
    skips = SkipLog()
    batch_rows = config.csv_batch_rows
    info: dict[str, object] = {}
    with ui.step("Matching ECGs to ED stays"):
        records = load_record_list(sources["record_list"], skips, batch_rows)
        stays = load_edstays(sources["edstays"], skips, batch_rows)
        cohort = match_ecgs_to_stays(records, stays, config.match_window_minutes, skips).with_row_index("_cand")
        cohort = cohort.with_columns(pl.col("_cand").cast(pl.Int64))
        info.update(record_list_rows=records.height, edstays_rows=stays.height)

    with ui.step("Reading patients, triage, vitals, omr"):
        patients = load_patients(sources["patients"], cohort["subject_id"], skips, batch_rows)
        cohort = _demographics(cohort, patients, skips)
        stay_ids = cohort["stay_id"]
        triage = load_triage(sources["triage"], stay_ids, skips, batch_rows)
        vitalsign = load_vitalsign(sources["vitalsign"], stay_ids, skips, batch_rows)
        vitals = [clean_vitals(vitalsign.drop("acuity", strict=False), sources["vitalsign"], skips)]
        if config.include_triage_vitals:
            at_intime = triage.join(
                cohort.select("stay_id", pl.col("intime").alias("charttime")).unique("stay_id"), on="stay_id"
            )
            vitals.append(clean_vitals(at_intime.drop("acuity"), sources["triage"], skips))
        all_vitals = pl.concat([v.with_columns(pl.col("charttime").cast(pl.Datetime("us"))) for v in vitals])
        omr = load_omr(sources["omr"], cohort["subject_id"], skips, batch_rows)
        biometrics = feat.closest_biometrics(cohort, omr, config.biometrics_window_days)
        d_labitems = load_d_labitems(sources["d_labitems"], batch_rows)
        _check_d_labitems(d_labitems, sources, skips)

    cohort_stays = cohort.select("subject_id", "stay_id", "intime").unique("stay_id").sort("stay_id")
    with ui.step("Streaming labevents (rows)") as advance:
        extract = stream_labevents(
            sources["labevents"],
            cohort_stays,
            known_itemids=set(d_labitems["itemid"].drop_nulls().to_list()),
            before_minutes=config.lab_label_window_minutes,
            after_minutes=max(
                config.feature_window_minutes, config.match_window_minutes + config.lab_label_window_minutes
            ),
            skips=skips,
            batch_rows=batch_rows,
            on_batch=advance,
        )
        info.update(
            labevents_rows=extract.rows_read,
            labevents_protocol_rows=extract.rows_protocol,
            labevents_rows_kept=extract.rows.height,
            labevents_seconds=round(extract.seconds, 2),
        )

    with ui.step("Features, lab values and diagnosis codes"):
        features = feat.assemble_features(
            cohort,
            triage,
            all_vitals,
            extract.rows,
            biometrics,
            config.feature_window_minutes,
            chunk_stays=config.statistics_chunk_stays,
        )
        closest = lab_labels.closest_values(cohort, extract.rows, config.lab_label_window_minutes)
        stay_labels = icd.load_stay_codes(
            sources["ed_diagnosis"],
            sources["diagnoses_icd"],
            cohort.select("stay_id", "hadm_id").unique("stay_id"),
            skips,
            batch_rows,
        )
        seen = set(stay_labels["label"].unique().to_list())
        fallback = {c: t for c, t in icd.load_icd10_titles(sources["d_icd_diagnoses"], batch_rows).items() if c in seen}

    candidates = cohort.select(
        "_cand", "subject_id", "study_id", "stay_id", "hadm_id", "ecg_time", "intime", "age", "gender", "path"
    )
    return TablesStage(candidates, features, closest, stay_labels, extract.reference_ranges, fallback, skips, info)


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
    memmap = writer.signals(n, PreprocessSpec().num_samples)
    del memmap
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
    diagnosis: np.ndarray  # records × kept codes, float32 0/1
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
    labels = _labels_and_folds(records, tables, config)
    features = tables.features.filter(pl.Series(valid))
    specs = feat.feature_specs(features, np.isin(labels.folds, config.train_folds), feat.feature_catalogue())

    writer.write_table(RECORDS_FILE, _records_table(records, labels.folds))
    writer.write_table(FEATURES_FILE, features)
    writer.write_table(DIAGNOSES_FILE, _label_frame(labels.diagnosis_names, labels.diagnosis))
    writer.write_table(LAB_LABELS_FILE, _label_frame(labels.lab_names, labels.lab))
    manifest = _manifest(records.height, labels, specs, tables, config, fingerprints)
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
    report = {
        "ecgkt_version": __version__,
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
    writer.write_json(BUILD_REPORT_FILE, report)
    observed = [
        float(np.isfinite(features[s.name].cast(pl.Float64).fill_null(np.nan).to_numpy()).mean()) for s in specs
    ]
    writer.write_text(
        COHORT_REPORT_FILE,
        cohort_report_markdown(
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
        ),
    )


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


def _labels_and_folds(records: pl.DataFrame, tables: TablesStage, config: BuildConfig) -> Labels:
    """Diagnosis labels by count, candidate lab labels, folds, then lab labels by the val/test rule."""
    n = records.height
    all_codes, dx_all = icd.label_matrix(records["stay_id"], tables.stay_labels)
    min_count = config.effective_min_label_count(n)
    dx_names, dx = icd.select_frequent(all_codes, dx_all, min_count)

    closest = tables.closest_labs.join(records.select("_cand", "row"), on="_cand").select(
        pl.col("row").alias("_cand"), "itemid", "value"
    )
    lab_names_all, lab_all = lab_labels.label_candidates(closest, tables.reference_ranges, n)

    strata = demographic_strata(
        records["age"].cast(pl.Float64).fill_null(np.nan).to_numpy(), records["gender"].to_numpy()
    )
    targets = sp.hstack(
        [sp.csr_matrix(dx), sp.csr_matrix(np.nan_to_num(lab_all, nan=0.0)), sp.csr_matrix(strata)], format="csr"
    )
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
        lab=lab_all[:, kept],
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
            num_samples=preprocess.num_samples,
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


def _label_frame(names: list[str], matrix: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame([pl.Series(name, matrix[:, j], dtype=pl.Float32) for j, name in enumerate(names)])


def _compact_signals(path: Path, valid: np.ndarray, chunk: int) -> None:
    """Drop the rows of skipped records from signals.npy (only when some were skipped)."""
    source = np.load(path, mmap_mode="r")
    if source.shape[0] == int(valid.sum()):
        return  # nothing skipped, or already compacted by an interrupted earlier finalise
    keep = np.flatnonzero(valid)
    tmp = path.with_name(".signals.compact.npy")
    target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keep), *source.shape[1:]))
    for lo in range(0, len(keep), chunk):
        target[lo : lo + chunk] = source[keep[lo : lo + chunk]]
    target.flush()
    del target, source
    os.replace(tmp, path)
