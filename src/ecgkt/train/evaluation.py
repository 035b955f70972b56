"""Scoring predictions and writing them next to a run: macro AUROC with bootstrap CI, per-label CSV.

Kept apart from the stages so the benchmark can score the assembled ECG-only model with exactly the
same code that scores each stage.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ecgkt.atomic_files import replacing, write_text_atomically
from ecgkt.evaluate.metrics import bootstrap_macro_auroc_ci, masked_auroc_per_label, masked_macro_auroc


@dataclass(frozen=True)
class Score:
    """Macro AUROC on one split with its bootstrap CI, plus the per-label AUROCs."""

    macro: float
    low: float
    high: float
    per_label: dict[str, float | None]
    n_records: int
    n_scored_labels: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "macro_auroc": _finite_or_none(self.macro),
            "ci_low": _finite_or_none(self.low),
            "ci_high": _finite_or_none(self.high),
            "n_records": self.n_records,
            "n_scored_labels": self.n_scored_labels,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def score_predictions(
    targets: NDArray[np.float32],
    probabilities: NDArray[np.float32],
    label_names: Sequence[str],
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> Score:
    per_label = masked_auroc_per_label(targets, probabilities)
    macro, low, high = bootstrap_macro_auroc_ci(
        targets, probabilities, n_resamples=n_resamples, seed=seed, confidence=confidence
    )
    return Score(
        macro=float(macro),
        low=float(low),
        high=float(high),
        per_label={name: _finite_or_none(float(v)) for name, v in zip(label_names, per_label, strict=True)},
        n_records=int(targets.shape[0]),
        n_scored_labels=int(np.isfinite(per_label).sum()),
    )


@dataclass(frozen=True)
class PairedDifference:
    """macro AUROC(a) − macro AUROC(b) on the same records, with a paired bootstrap CI."""

    delta: float
    low: float
    high: float
    n_resamples: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "delta": _finite_or_none(self.delta),
            "ci_low": _finite_or_none(self.low),
            "ci_high": _finite_or_none(self.high),
            "n_resamples": self.n_resamples,
        }


def paired_bootstrap_difference(
    targets: NDArray[np.float32],
    probabilities_a: NDArray[np.float32],
    probabilities_b: NDArray[np.float32],
    *,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> PairedDifference:
    """Resample test records once per draw and score both models on that same draw.

    Two models scored on the same test fold have strongly correlated errors, so their separate CIs
    overlap even when one is consistently better; the paired difference is the right comparison.
    """
    if targets.shape != probabilities_a.shape or targets.shape != probabilities_b.shape:
        raise ValueError(
            f"paired comparison needs equal shapes, got {targets.shape}, {probabilities_a.shape}, "
            f"{probabilities_b.shape}"
        )
    delta = masked_macro_auroc(targets, probabilities_a) - masked_macro_auroc(targets, probabilities_b)
    rng = np.random.default_rng(seed)
    n = targets.shape[0]
    draws = []
    for _ in range(n_resamples):
        index = rng.integers(0, n, size=n)
        draws.append(
            masked_macro_auroc(targets[index], probabilities_a[index])
            - masked_macro_auroc(targets[index], probabilities_b[index])
        )
    finite = np.asarray(draws, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return PairedDifference(float(delta), float("nan"), float("nan"), n_resamples)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return PairedDifference(float(delta), float(low), float(high), n_resamples)


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    return write_text_atomically(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_per_label_csv(
    path: Path,
    label_names: Sequence[str],
    targets: NDArray[np.float32],
    scores: Mapping[str, Score],
    titles: Mapping[str, str] | None = None,
) -> Path:
    """One row per label: title, test positives / known, and the AUROC on each scored split."""
    titles = titles or {}
    known = np.isfinite(targets)
    positives = np.nansum(targets, axis=0)
    with replacing(path, suffix=".csv") as temporary, temporary.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["label", "title", "n_known", "n_positive", *[f"auroc_{split}" for split in scores]])
        for index, name in enumerate(label_names):
            values = [scores[split].per_label.get(name) for split in scores]
            writer.writerow(
                [
                    name,
                    titles.get(name, ""),
                    int(known[:, index].sum()),
                    int(positives[index]),
                    *["" if v is None else f"{v:.4f}" for v in values],
                ]
            )
    return path


def save_predictions(
    path: Path, probabilities: NDArray[np.float32], targets: NDArray[np.float32], label_names: Sequence[str]
) -> Path:
    """NumPy .npz without object arrays, so it loads with allow_pickle=False."""
    with replacing(path, suffix=".npz") as temporary:
        np.savez(temporary, probabilities=probabilities, targets=targets, labels=np.array(list(label_names), dtype=str))
    return path


def load_predictions(path: Path) -> tuple[NDArray[np.float32], NDArray[np.float32], list[str]]:
    with np.load(path, allow_pickle=False) as data:
        return data["probabilities"], data["targets"], [str(v) for v in data["labels"]]
