"""A tiny store with planted structure, written with `StoreWriter`: the training tests' trainable store.

Planted so that learning is checkable on a few hundred records:
- diagnosis `I48` shifts lead I by +0.6 mV (visible in the ECG);
- diagnosis `E11` follows the lab feature `Glucose__mean` only (invisible in the ECG);
- lab label `Potassium_high` raises lead V2 (visible), `Glucose_high` follows glucose; ~30 % unknown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.store import FeatureSpec, FoldSpec, PreprocessingSpec, StoreManifest, StoreWriter

__all__ = ["make_fake_ground_truth", "make_tiny_store"]


def make_tiny_store(path: Path, n_records: int = 160, seed: int = 0, *, lab_labels: bool = True) -> Path:
    """`lab_labels=False`: a store whose builder found no lab abnormality to label (none reached the minimum)."""
    rng = np.random.default_rng(seed)
    folds = np.where(np.arange(n_records) % 5 < 3, np.arange(n_records) % 18, 0)
    folds[np.arange(n_records) % 5 == 3] = 18
    folds[np.arange(n_records) % 5 == 4] = 19
    af = rng.random(n_records) < 0.4
    glucose = rng.normal(120, 40, n_records)
    diabetes = glucose + rng.normal(0, 15, n_records) > 140
    potassium = rng.normal(4.3, 0.7, n_records)
    age = rng.uniform(20, 90, n_records)
    gender = rng.integers(0, 2, n_records).astype(float)

    writer = StoreWriter(path)
    signals = writer.signals(n_records)
    noise = rng.normal(0, 0.1, (n_records, 12, 1000)).astype(np.float32)
    noise[:, 0, :] += 0.6 * af[:, None]
    noise[:, 7, :] += 0.4 * (potassium[:, None] - 4.3)
    signals[:] = noise
    signals.flush()

    glucose_observed = np.where(rng.random(n_records) < 0.8, glucose, np.nan)
    potassium_observed = np.where(rng.random(n_records) < 0.8, potassium, np.nan)
    heartrate = rng.normal(80, 15, n_records) + 20 * af
    features = pl.DataFrame(
        {
            "age": age,
            "gender": gender,
            "heartrate__mean": heartrate,
            "Glucose__mean": glucose_observed,
            "Potassium__mean": potassium_observed,
        }
    )
    train = folds < 18

    def numeric_spec(name: str, group: str, values: np.ndarray) -> FeatureSpec:
        v = values[train]
        v = v[np.isfinite(v)]
        return FeatureSpec(
            name=name,
            group=group,
            median=float(np.median(v)),
            mean=float(v.mean()),
            std=float(v.std()),
            observed_fraction=float(np.isfinite(values[train]).mean()),
        )

    specs = [
        numeric_spec("age", "routine", age),
        FeatureSpec(name="gender", group="routine", kind="categorical", categories=["F", "M"]),
        numeric_spec("heartrate__mean", "routine", heartrate),
        numeric_spec("Glucose__mean", "lab", glucose_observed),
        numeric_spec("Potassium__mean", "lab", potassium_observed),
    ]
    other = (rng.random(n_records) < 0.3).astype(np.float32)
    diagnoses = pl.DataFrame({"I48": af.astype(np.float32), "E11": diabetes.astype(np.float32), "R07": other})
    lab_known = rng.random((n_records, 2)) < 0.7
    lab_table = pl.DataFrame(
        {
            "Potassium_high": np.where(lab_known[:, 0], (potassium > 4.8).astype(np.float32), np.nan),
            "Glucose_high": np.where(lab_known[:, 1], (glucose > 140).astype(np.float32), np.nan),
        }
    ).cast(pl.Float32)
    records = pl.DataFrame(
        {
            "row": np.arange(n_records),
            "subject_id": 10_000_000 + np.arange(n_records),
            "study_id": 40_000_000 + np.arange(n_records),
            "stay_id": 30_000_000 + np.arange(n_records),
            "fold": folds.astype(np.int64),
            "age": age,
            "gender": np.where(gender == 1, "M", "F"),
        }
    )
    writer.write_table("records.parquet", records)
    writer.write_table("features.parquet", features)
    writer.write_table("diagnoses.parquet", diagnoses)
    if not lab_labels:
        lab_table = lab_table.select([])
    writer.write_table("lab_labels.parquet", lab_table)
    manifest = StoreManifest(
        n_records=n_records,
        preprocessing=PreprocessingSpec(leads=list(CANONICAL_LEADS)),
        diagnosis_labels=["I48", "E11", "R07"],
        diagnosis_titles={
            "I48": "Atrial fibrillation and flutter",
            "E11": "Type 2 diabetes mellitus",
            "R07": "Pain in throat and chest",
        },
        lab_labels=list(lab_table.columns),
        features=specs,
        folds=FoldSpec(sizes=[int((folds == f).sum()) for f in range(20)]),
    )
    writer.write_manifest(manifest)
    return writer.commit()


def make_fake_ground_truth(store: Path, cohort: Path, seed: int = 0) -> Path:
    """A synthetic cohort's `ground_truth/records.parquet` for a tiny store: every noise-free ECG
    parameter is noise except `rhythm_af`, which carries the store's I48 label (as the renderer's AF
    parameter does), so an ECG-only oracle must find I48 and nothing ECG-invisible (E11)."""
    from ecgkt.evaluate.ceiling import GROUND_TRUTH_RECORDS
    from ecgkt.store import Store
    from ecgkt.synth.ecg_mapping import ECG_FEATURES

    opened = Store.open(store)
    labels = list(opened.manifest.diagnosis_labels)
    af = np.nan_to_num(opened.diagnosis_targets()[:, labels.index("I48")])
    rng = np.random.default_rng(seed)
    truth = {name: rng.normal(size=af.size) for name in ECG_FEATURES}
    truth["rhythm_af"] = af + rng.normal(0, 0.05, af.size)
    path = cohort / GROUND_TRUTH_RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"study_id": opened.records["study_id"], **truth}).write_parquet(path)
    return cohort
