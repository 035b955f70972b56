"""Replicates of the transfer study as derived stores: a rotated test fold and a labelled fraction.

Why derived stores: every training stage reads its train / val / test records through
`Store.split_indices`, i.e. through the manifest's fold lists. A derived store is a folder whose
`manifest.json` names other folds (and whose `records.parquet` marks the unlabelled training
records with a fold outside every split); every other file is a symlink to the base store. So the
existing stages run unchanged on a rotated fold or a label fraction, nothing large is copied, and
each replicate's tabular statistics (median / mean / std used for imputation and scaling) are
recomputed on *its* training folds, so no statistic ever sees a replicate's test records.

Rotation: with `k` test folds per replicate, replicate r tests on folds n−1−r·k … n−k−r·k and
validates on the fold below them; replicate 0 with k = 1 is the store's own split (val 18, test 19).
Replicates never share a test fold, so pooled results cover disjoint test records.

Label fractions are nested per replicate (the 5 % subset ⊂ the 20 % subset ⊂ all), drawn at the
patient level (a patient's ECGs are labelled together) from a permutation seeded by the replicate.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.atomic_files import write_text_atomically
from ecgkt.store import (
    MANIFEST_FILE,
    RECORDS_FILE,
    REQUIRED_FILES,
    FeatureSpec,
    FoldSpec,
    Store,
    StoreManifest,
)

__all__ = [
    "DERIVED_MARKER",
    "ReplicatePlan",
    "SplitError",
    "check_pool",
    "derive_pool_store",
    "derive_store",
    "labelled_subjects",
    "pool_for_store",
    "primary_labels",
    "replicate_plan",
]

DERIVED_MARKER = "derived_from.json"


class SplitError(ValueError):
    """A replicate that cannot be formed: too many replicates for the folds, empty splits, bad pool."""


@dataclass(frozen=True)
class ReplicatePlan:
    """Which base-store folds one replicate trains, validates and tests on."""

    replicate: int
    seed: int
    train_folds: tuple[int, ...]
    val_folds: tuple[int, ...]
    test_folds: tuple[int, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "replicate": self.replicate,
            "seed": self.seed,
            "train_folds": list(self.train_folds),
            "val_folds": list(self.val_folds),
            "test_folds": list(self.test_folds),
        }


def replicate_plan(
    n_folds: int, replicate: int, *, n_replicates: int, test_folds: int = 1, base_seed: int = 0
) -> ReplicatePlan:
    """The rotated split of replicate `replicate` (module docstring); seed = base_seed + replicate."""
    if test_folds < 1:
        raise SplitError(f"test folds per replicate must be >= 1, got {test_folds}")
    if n_replicates * test_folds + 1 > n_folds - 1:
        raise SplitError(
            f"{n_replicates} replicates × {test_folds} test fold(s) need more than the store's {n_folds} folds "
            "(each replicate needs its own test folds, a validation fold and training folds)"
        )
    if not 0 <= replicate < n_replicates:
        raise SplitError(f"replicate {replicate} outside 0..{n_replicates - 1}")
    test = tuple(n_folds - 1 - replicate * test_folds - j for j in range(test_folds))
    val = ((min(test) - 1) % n_folds,)
    train = tuple(f for f in range(n_folds) if f not in test and f not in val)
    return ReplicatePlan(replicate, base_seed + replicate, train, val, test)


def labelled_subjects(subject_ids: NDArray[np.int64], fraction: float, seed: int) -> NDArray[np.bool_]:
    """Mask of training records labelled at `fraction`: whole patients, nested across fractions.

    Patients are taken in the order of one permutation (seeded by `seed` only), until their records
    reach `ceil(fraction × n)`; a smaller fraction therefore always labels a subset of a larger one.
    """
    if not 0.0 < fraction <= 1.0:
        raise SplitError(f"label fraction must be in (0, 1], got {fraction}")
    n = len(subject_ids)
    if fraction >= 1.0:
        return np.ones(n, dtype=bool)
    unique, counts = np.unique(subject_ids, return_counts=True)
    order = np.random.default_rng([seed, 7_919]).permutation(len(unique))
    cumulative = np.cumsum(counts[order])
    wanted = math.ceil(fraction * n)
    n_patients = int(np.searchsorted(cumulative, wanted) + 1)
    chosen = unique[order[:n_patients]]
    return np.isin(subject_ids, chosen)


def _recomputed_features(
    features: Sequence[FeatureSpec], frame: pl.DataFrame, train_mask: NDArray[np.bool_]
) -> list[FeatureSpec]:
    """The manifest's feature statistics recomputed on `train_mask` rows (as the builder computes
    them: median / mean / population std of the observed values, observed fraction)."""
    n_train = int(train_mask.sum())
    result = []
    for spec in features:
        if spec.name not in frame.columns:
            result.append(spec)
            continue
        values = frame[spec.name].cast(pl.Float64).to_numpy()[train_mask]
        finite = values[np.isfinite(values)]
        update: dict[str, float | None] = {"observed_fraction": len(finite) / max(1, n_train)}
        if spec.kind == "numeric":
            update.update(
                median=float(np.median(finite)) if finite.size else None,
                mean=float(np.mean(finite)) if finite.size else None,
                std=float(np.std(finite)) if finite.size else None,
            )
        result.append(spec.model_copy(update=update))
    return result


def _link_files(base: Path, out: Path, skip: set[str]) -> None:
    for entry in sorted(base.iterdir()):
        if entry.name in skip or entry.name.startswith("."):
            continue
        link = out / entry.name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(entry.resolve(), link)


def _write_derived(
    base: Store,
    out: Path,
    fold: NDArray[np.int64],
    folds: FoldSpec,
    train_mask: NDArray[np.bool_],
    description: dict[str, object],
) -> Path:
    """Write `out` (atomically per file; the marker last) as `base` with new folds and statistics."""
    marker = out / DERIVED_MARKER
    if marker.exists() and json.loads(marker.read_text()) == description:
        return out  # already derived with exactly these settings (resume)
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    _link_files(base.path, out, skip={MANIFEST_FILE, RECORDS_FILE, DERIVED_MARKER})
    records = base.records.with_columns(pl.Series("fold", fold.astype(np.int64)))
    tmp = out / f".{RECORDS_FILE}.tmp"
    records.write_parquet(tmp)
    os.replace(tmp, out / RECORDS_FILE)
    features = _recomputed_features(base.manifest.features, base.raw_features(), train_mask)
    manifest: StoreManifest = base.manifest.model_copy(update={"folds": folds, "features": features})
    write_text_atomically(out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    write_text_atomically(marker, json.dumps(description, indent=2, sort_keys=True))
    missing = [name for name in REQUIRED_FILES if not (out / name).exists()]
    if missing:
        raise SplitError(f"{out}: derived store is missing {missing}")
    return out


def derive_store(base_path: Path, out: Path, plan: ReplicatePlan, fraction: float) -> Path:
    """A store on `base_path`'s records: `plan`'s folds, only `fraction` of the training records in
    the train split (the others get fold id `n_folds`, outside every split), statistics recomputed
    on all of the replicate's training records (labels are not needed for them)."""
    base = Store.open(base_path)
    original = base.folds
    n_folds = base.manifest.folds.n_folds
    in_train = np.isin(original, plan.train_folds)
    subjects = base.records["subject_id"].to_numpy().astype(np.int64)
    labelled = np.zeros(len(original), dtype=bool)
    labelled[in_train] = labelled_subjects(subjects[in_train], fraction, plan.seed)
    fold = original.copy()
    fold[in_train & ~labelled] = n_folds  # unlabelled: outside train, val and test
    folds = FoldSpec(
        n_folds=n_folds,
        train=list(plan.train_folds),
        val=list(plan.val_folds),
        test=list(plan.test_folds),
        sizes=[int((fold == f).sum()) for f in range(n_folds)],
        seed=base.manifest.folds.seed,
    )
    description = {
        "base": str(base_path.resolve()),
        "plan": plan.as_dict(),
        "fraction": fraction,
        "n_labelled_train": int(labelled.sum()),
        "n_train_records": int(in_train.sum()),
    }
    return _write_derived(base, out, fold, folds, in_train, description)


def derive_pool_store(pool_path: Path, base_path: Path, out: Path, plan: ReplicatePlan) -> Path:
    """The pretraining pool of one replicate: every pool record except those of the replicate's
    validation and test patients (in `base_path`) is a training pair; the validation patients'
    pool records are the validation split (pretraining's checkpoint selection); test patients' pool
    records are in no split. The pool is an ecgkt store (e.g. the builder's pool export); it needs a
    `subject_id` per record."""
    pool, base = Store.open(pool_path), Store.open(base_path)
    if "subject_id" not in pool.records.columns:
        raise SplitError(f"{pool_path / RECORDS_FILE}: the pretraining pool needs a subject_id column")
    base_folds = base.folds
    base_subjects = base.records["subject_id"].to_numpy().astype(np.int64)
    val_subjects = np.unique(base_subjects[np.isin(base_folds, plan.val_folds)])
    test_subjects = np.unique(base_subjects[np.isin(base_folds, plan.test_folds)])
    subjects = pool.records["subject_id"].to_numpy().astype(np.int64)
    fold = np.zeros(len(subjects), dtype=np.int64)  # 0 = train
    fold[np.isin(subjects, val_subjects)] = 1
    fold[np.isin(subjects, test_subjects)] = 2
    pool_rows = pool_path / "pool.parquet"  # the builder's pool export (ecgkt.cohort.pretrain_pool.POOL_FILE)
    if pool_rows.is_file():  # ECGs with no lab or vital value in their window are no (ECG, tabular) pair
        has_tabular = pl.read_parquet(pool_rows).sort("row")["has_tabular"].to_numpy().astype(bool)
        if has_tabular.size != fold.size:
            raise SplitError(f"{pool_rows}: {has_tabular.size} rows for a pool store of {fold.size} records")
        fold[~has_tabular] = 2
    if not (fold == 0).any() or not (fold == 1).any():
        raise SplitError(
            f"{pool_path}: after removing replicate {plan.replicate}'s validation and test patients the pool "
            f"has {(fold == 0).sum()} training and {(fold == 1).sum()} validation records; both must be > 0"
        )
    folds = FoldSpec(n_folds=3, train=[0], val=[1], test=[2], sizes=[int((fold == f).sum()) for f in range(3)])
    description = {
        "pool": str(pool_path.resolve()),
        "base": str(base_path.resolve()),
        "plan": plan.as_dict(),
        "n_train_records": int((fold == 0).sum()),
    }
    return _write_derived(pool, out, fold, folds, fold == 0, description)


def check_pool(pool_path: Path, store_path: Path) -> None:
    """Refuse a pool that cannot pretrain for `store_path` (seconds, before any training): not a
    store, no subject ids, or other preprocessing (rate, crop length, filters) — the encoder it
    pretrains is fine-tuned on the store's records, so a mismatch would be silently wrong."""
    for path, what in ((pool_path, "pretraining pool"), (store_path, "labelled store")):
        if not (path / MANIFEST_FILE).is_file():
            raise SplitError(f"{path}: no {MANIFEST_FILE} here; the {what} must be a store written by `ecgkt build`")
    pool, store = Store.open(pool_path), Store.open(store_path)
    if "subject_id" not in pool.records.columns:
        raise SplitError(f"{pool_path / RECORDS_FILE}: the pretraining pool needs a subject_id column")
    if pool.manifest.preprocessing != store.manifest.preprocessing:
        raise SplitError(
            f"{pool_path}: the pool's preprocessing ({pool.manifest.preprocessing}) differs from the labelled "
            f"store's ({store.manifest.preprocessing}); build both with the same settings"
        )


def pool_for_store(pool_path: Path, store_path: Path, out: Path, seed: int) -> Path:
    """The pretraining pool of a labelled store's own split (what `pretrain.pool` trains on): the
    pool minus the store's test patients, its validation patients as the validation split."""
    check_pool(pool_path, store_path)
    folds = Store.open(store_path).manifest.folds
    plan = ReplicatePlan(0, seed, tuple(folds.train), tuple(folds.val), tuple(folds.test))
    return derive_pool_store(pool_path, store_path, out, plan)


def primary_labels(
    base_path: Path, plans: Sequence[ReplicatePlan], min_positives: int, min_negatives: int | None = None
) -> list[str]:
    """Diagnosis labels with >= `min_positives` positives (and as many negatives) in the test folds
    of EVERY replicate: the label set the study's macro AUROC is computed on, fixed before any run."""
    base = Store.open(base_path)
    targets = base.diagnosis_targets()
    folds = base.folds
    keep = np.ones(targets.shape[1], dtype=bool)
    for plan in plans:
        test = targets[np.isin(folds, plan.test_folds)]
        positives = np.nansum(test, axis=0)
        negatives = np.sum(test == 0, axis=0)
        keep &= positives >= min_positives
        keep &= negatives >= (min_negatives if min_negatives is not None else min_positives)
    return [name for name, k in zip(base.manifest.diagnosis_labels, keep, strict=True) if k]
