"""How much tabular knowledge does each ECG encoder carry? A linear probe from h_x to the tabular data.

    python benchmarks/train_transfer_probe.py --run RUN_DIR --store STORE

For each encoder of a finished benchmark run (random init as the reference measured in the same run,
the supervised signal-only encoder, the stage-1 joint-embedding encoder, the stage-2 encoder), the
record embedding h_x (mean over the 4 evaluation windows) is computed for every ECG; a ridge
regression fitted on the training folds predicts each standardised numeric tabular feature, and R² is
measured on the test fold over the entries that were actually observed. Higher R² = the encoder
represents more of the routine / lab information the joint-embedding stage is meant to transfer.
Writes benchmarks/results/train_transfer_probe.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load_file
from sklearn.linear_model import Ridge

from _common import embed_store
from ecgkt.atomic_files import write_text_atomically
from ecgkt.config import RunConfig, load_config
from ecgkt.models.encoders import EcgEncoder
from ecgkt.store import Store

RESULTS = Path(__file__).parent / "results"


def probe_r2(h: NDArray[np.float32], store: Store, groups: tuple[str, ...]) -> tuple[float, int]:
    """Mean test R² over numeric features of `groups` observed in ≥ 50 % of training records."""
    tab = store.tabular(groups=groups, observed_mask=True)  # type: ignore[arg-type]
    n = len(tab.numeric_names) // 2
    values, observed = tab.numeric[:, :n], tab.numeric[:, n:] > 0.5
    train, test = store.split_indices("train"), store.split_indices("test")
    keep = observed[train].mean(0) >= 0.5
    mean, std = h[train].mean(0), h[train].std(0) + 1e-6
    z = (h - mean) / std
    model = Ridge(alpha=10.0).fit(z[train], values[train][:, keep])
    predicted = model.predict(z[test])
    scores = []
    for j, column in enumerate(np.flatnonzero(keep)):
        seen = observed[test, column]
        y = values[test, column][seen]
        if y.size < 20 or y.var() == 0:
            continue
        scores.append(1.0 - np.mean((y - predicted[seen, j]) ** 2) / y.var())
    return float(np.mean(scores)), len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="benchmark output folder")
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config: RunConfig = load_config(path=args.run / "config.yaml")
    store = Store.open(args.store)
    torch.manual_seed(config.seed)
    encoders = {"random init (reference)": None}
    encoders |= {
        "supervised signal-only": args.run / "baseline-signal" / "encoder.safetensors",
        "stage 1 joint embedding": args.run / "pretrain" / "encoder.safetensors",
        "stage 2 (JE + diagnosis finetuning)": args.run / "finetune" / "encoder.safetensors",
    }
    rows = []
    for name, path in encoders.items():
        encoder = EcgEncoder(config.encoder)
        if path is not None:
            encoder.load_state_dict(load_file(str(path)))
        h = embed_store(encoder, store, config.data.window_samples, config.data.n_eval_windows)
        routine, n_routine = probe_r2(h, store, ("routine",))
        lab, n_lab = probe_r2(h, store, ("lab",))
        rows.append((name, routine, lab))
        print(name, round(routine, 4), round(lab, 4), flush=True)
    reference = rows[0]
    lines = [
        "# Linear probe: tabular information in the ECG encoder's embedding h_x",
        "",
        f"Run `{args.run}`, store `{args.store}` ({len(store)} ECGs). Ridge regression (α = 10) from the "
        "standardised 4-window mean embedding to each standardised numeric tabular feature observed in "
        "≥ 50 % of training records; mean R² on the observed test-fold entries "
        f"({n_routine} routine, {n_lab} lab features). Reference: an untrained encoder, measured in the same run.",
        "",
        "| encoder | routine R² | Δ vs random | lab R² | Δ vs random |",
        "|---|---|---|---|---|",
    ]
    for name, routine, lab in rows:
        lines.append(
            f"| {name} | {routine:.3f} | {routine - reference[1]:+.3f} | {lab:.3f} | {lab - reference[2]:+.3f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomically(RESULTS / "train_transfer_probe.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
