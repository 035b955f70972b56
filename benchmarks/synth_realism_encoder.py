"""The encoder half of the realism benchmark: what a trained signal-only encoder reads from the ECG.

1. generate a synthetic cohort (`--patients`), build its store (5 folds: 0-2 train, 3 val, 4 test);
2. train the project's signal-only baseline (ECG → diagnoses; `cpu` preset unless `--preset`);
3. embed every store ECG with its encoder (mean over the evaluation windows) and, per target of the
   coupling table, fit a logistic regression (ridge for age) on the training folds' embeddings and
   score AUROC (R²) on the validation + test folds. Targets come from `ground_truth/` (true values
   at the ECG), matched by study_id.

    .venv/bin/python benchmarks/synth_realism_encoder.py --patients 1500 --out /tmp/realism_enc

Writes OUT/encoder_realism.json, which `benchmarks/synth_realism.py --encoder FILE` puts beside the
oracle. Records its wall time and conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

from _common import embed_store
from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.pipeline import build_store
from ecgkt.config import load_config
from ecgkt.mimic.layout import MimicFolders
from ecgkt.models.encoders import EcgEncoder
from ecgkt.store import Store
from ecgkt.synth.cohort import generate_cohort
from ecgkt.train.stages import run_baseline

MIN_POSITIVES = 10


def targets(root: Path, store: Store) -> dict[str, np.ndarray]:
    records = pl.read_parquet(root / "ground_truth" / "records.parquet")
    visits = pl.read_parquet(root / "ground_truth" / "visits.parquet")
    frame = store.records.select("study_id", "stay_id").join(records, on="study_id", how="left", suffix="_gt")
    frame = frame.join(visits, on="stay_id", how="left", suffix="_visit")
    female = (frame["gender"] == "F").to_numpy()
    hb = frame["true_hemoglobin"].to_numpy()
    out = {
        "sex": ~female, "age": frame["true_age"].to_numpy(),
        "heart_failure": frame["heart_failure"].to_numpy(),
        "lv_dysfunction_ef35": frame["true_ejection_fraction"].to_numpy() <= 35.0,
        "anaemia_hb10": hb <= 10.0, "anaemia_who": hb < np.where(female, 12.0, 13.0),
        "hyperkalaemia_k55": frame["true_potassium"].to_numpy() >= 5.5,
        "hypokalaemia_k35": frame["true_potassium"].to_numpy() < 3.5,
        "hypoalbuminaemia": frame["true_albumin"].to_numpy() < 3.5,
        "ckd_any": frame["ckd"].to_numpy(), "ckd_stage4plus": frame["ckd_stage"].to_numpy() >= 4,
        "diabetes": frame["diabetes"].to_numpy(), "liver_disease": frame["liver_disease"].to_numpy(),
        "atrial_fibrillation": frame["atrial_fibrillation"].to_numpy(),
        "hyponatraemia": frame["true_Sodium"].to_numpy() < 135.0,
        "pacemaker": frame["pacemaker"].to_numpy(), "stemi": frame["stemi"].to_numpy(),
    }
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    root = args.out / "synth"
    if not root.exists():
        generate_cohort(root, args.patients, args.seed, workers=1, show_progress=False)
    store_path = args.out / "store"
    if not store_path.exists():
        build_store(MimicFolders.from_synthetic_root(root), store_path, BuildConfig(workers=1, n_folds=5,
                                                                                    seed=args.seed))
    t_data = time.time() - t0
    config = load_config(args.preset, overrides={"trainer": {"cpu_threads": 1, "progress_bar": False},
                                                 "seed": args.seed})
    result = run_baseline("signal", config, store_path, args.out / "baseline-signal", resume=True)
    t_train = time.time() - t0 - t_data
    store = Store.open(store_path)
    encoder = EcgEncoder(config.encoder)
    encoder.load_state_dict(load_file(str(args.out / "baseline-signal" / "encoder.safetensors")))
    h = embed_store(encoder, store, config.data.window_samples, config.data.n_eval_windows)
    z = (h - h.mean(0)) / (h.std(0) + 1e-6)
    folds = store.folds
    train = folds <= 2
    held = folds >= 3
    scores: dict[str, float | None] = {}
    for name, y in targets(root, store).items():
        if name == "age":
            model = Ridge(alpha=10.0).fit(z[train], y[train])
            scores[name] = round(float(r2_score(y[held], model.predict(z[held]))), 3)
            continue
        y = np.nan_to_num(y.astype(float)) > 0.5
        if y[train].sum() < MIN_POSITIVES or y[held].sum() < MIN_POSITIVES or (~y[held]).sum() < MIN_POSITIVES:
            scores[name] = None
            continue
        model = LogisticRegression(C=0.5, max_iter=2000).fit(z[train], y[train])
        scores[name] = round(float(roc_auc_score(y[held], model.predict_proba(z[held])[:, 1])), 3)
    conditions = (
        f"{args.patients} patients, seed {args.seed} → {len(store)} ED-window ECGs; store with 5 folds (0-2 train, "
        f"3 val, 4 test); signal-only baseline (`{args.preset}` preset, ECG → diagnoses, "
        f"{config.baseline.optim.max_epochs} epochs, 1 thread), then a logistic / ridge probe on its 4-window mean "
        f"embedding fitted on the training folds and scored on val + test ({int(held.sum())} ECGs). "
        f"Wall time: data {t_data:.0f} s, training {t_train:.0f} s, total {time.time() - t0:.0f} s "
        f"on 1 core of a shared 2-core machine (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')}). "
        f"Baseline test macro AUROC: {result.metrics.get('test', {}).get('macro_auroc', 'n/a')}."
    )
    (args.out / "encoder_realism.json").write_text(json.dumps({"targets": scores, "conditions": conditions},
                                                              indent=1) + "\n")
    print(json.dumps(scores, indent=1))
    print(conditions)


if __name__ == "__main__":
    main()
