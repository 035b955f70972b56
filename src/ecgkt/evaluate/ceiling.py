"""The ECG-only oracle ceiling: what a model that reads only the ECG could reach on a synthetic cohort.

Table 1's "share of the gap closed" needs a reachable reference. The multimodal model is not one (it
reads tabular data no ECG-only model sees). On the synthetic cohort the renderer's **noise-free ECG
parameters** are known (`ground_truth/records.parquet`); a gradient-boosting oracle per diagnosis
label on those parameters + age + sex, trained on the training records and scored on the test
records, estimates from below what any ECG-only model could reach *on the same records and labels*.
A ceiling measured on other labels or another split is not a ceiling for these rows (the realism
benchmark's 0.880 over 22 common ICD-10 prefixes was 0.767 on the transfer study's 151 labels).

It cannot exist for MIMIC (no ground truth), so everything here is optional to its callers. The
oracle's settings were fixed for the realism benchmark before any experiment and are shared by every
ceiling (`oracle_classifier`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.atomic_files import write_text_atomically
from ecgkt.errors import UserError
from ecgkt.store import MANIFEST_FILE, Store
from ecgkt.synth.ecg_mapping import ECG_FEATURES

__all__ = [
    "GROUND_TRUTH_RECORDS",
    "CeilingError",
    "oracle_classifier",
    "oracle_features",
    "oracle_identity",
    "oracle_predictions",
    "store_ceiling",
    "store_ceiling_cached",
]

GROUND_TRUTH_RECORDS = Path("ground_truth") / "records.parquet"  # below a synthetic cohort's root
MIN_TRAIN_POSITIVES = 5  # fewer: the oracle predicts the prevalence (AUROC 0.5), a conservative ceiling


class CeilingError(UserError):
    """A cohort or store the ceiling cannot be measured on; the message names the file."""


def oracle_classifier() -> Any:
    """Gradient boosting with the settings fixed for the realism benchmark; every oracle uses these."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.08, max_leaf_nodes=15, l2_regularization=1.0, random_state=0
    )


def oracle_identity() -> list[Any]:
    """What an oracle's predictions depend on besides its data: features, label rule, settings.
    Part of every cache key of oracle results, so a change here refits instead of reusing."""
    return [list(ECG_FEATURES), MIN_TRAIN_POSITIVES, repr(oracle_classifier().get_params())]


def oracle_features(store: Store, cohort: Path) -> NDArray[np.float64]:
    """(n_records, n_ecg_params + 2) in store row order: noise-free ECG parameters, age, female."""
    path = cohort / GROUND_TRUTH_RECORDS
    if not path.is_file():
        raise CeilingError(f"{path}: not found; the ceiling needs the synthetic cohort's ground truth")
    try:
        truth = pl.read_parquet(path, columns=["study_id", *ECG_FEATURES])
    except (pl.exceptions.PolarsError, OSError) as error:
        raise CeilingError(f"{path}: not a ground-truth records table ({error})") from None
    records = store.records.select("study_id", "age", "gender")
    joined = records.join(truth.unique("study_id"), on="study_id", how="left", maintain_order="left")
    missing = int(joined[ECG_FEATURES[0]].is_null().sum())
    if missing:
        raise CeilingError(f"{path}: {missing} of the store's {records.height} ECGs have no ground-truth row")
    ecg = joined.select(ECG_FEATURES).cast(pl.Float64).to_numpy()
    female = (joined["gender"] == "F").cast(pl.Float64).to_numpy()
    return np.column_stack([ecg, joined["age"].cast(pl.Float64).to_numpy(), female])


def oracle_predictions(
    x: NDArray[np.float64], targets: NDArray[np.float32], train: NDArray[np.bool_], test: NDArray[np.bool_]
) -> NDArray[np.float32]:
    """(n_test, n_labels) oracle probabilities, one model per label; unknown (NaN) targets are left
    out of its training."""
    probs = np.empty((int(test.sum()), targets.shape[1]), dtype=np.float32)
    for j in range(targets.shape[1]):
        y = targets[:, j]
        fit = train & np.isfinite(y)
        positives, known = int(y[fit].sum()), int(fit.sum())
        if positives < MIN_TRAIN_POSITIVES or positives == known:
            probs[:, j] = positives / max(known, 1)
            continue
        model = oracle_classifier().fit(x[fit], y[fit].astype(bool))
        probs[:, j] = model.predict_proba(x[test])[:, 1]
    return probs


def store_ceiling(store_path: Path, cohort: Path) -> dict[str, Any]:
    """The oracle ceiling of a store's own split on Table 1's terms: trained on the train split (all
    labelled), scored on the test split with Table 1's masked macro AUROC over the diagnosis labels."""
    from ecgkt.evaluate.metrics import masked_macro_auroc

    store = Store.open(store_path)
    x = oracle_features(store, cohort)  # before the fits: a cohort without ground truth fails in seconds
    targets = store.diagnosis_targets()
    rows = np.arange(len(targets))
    train, test = np.isin(rows, store.split_indices("train")), np.isin(rows, store.split_indices("test"))
    probs = oracle_predictions(x, targets, train, test)
    return {
        "macro_auroc": float(masked_macro_auroc(targets[test], probs)),
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "features": "noise-free ECG parameters + age + sex",
    }


def store_ceiling_cached(store_path: Path, cohort: Path, cache: Path) -> dict[str, Any]:
    """`store_ceiling`, kept in `cache` (JSON) and reused while the store's manifest, the cohort's
    ground truth and the oracle's settings are unchanged: a resumed benchmark skips the refit."""
    if not (cohort / GROUND_TRUTH_RECORDS).is_file() or not (Path(store_path) / MANIFEST_FILE).is_file():
        return store_ceiling(store_path, cohort)  # raises the error that names the missing file
    truth = (cohort / GROUND_TRUTH_RECORDS).stat()
    identity = [
        hashlib.sha256((Path(store_path) / MANIFEST_FILE).read_bytes()).hexdigest(),
        truth.st_size,
        truth.st_mtime_ns,
        *oracle_identity(),
    ]
    stamp = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    try:
        saved = json.loads(cache.read_text())
        if saved.get("stamp") == stamp:
            return dict(saved["ceiling"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # no cache, or an unreadable one: measure again
    ceiling = store_ceiling(store_path, cohort)
    write_text_atomically(cache, json.dumps({"stamp": stamp, "ceiling": ceiling}, indent=2) + "\n")
    return ceiling
