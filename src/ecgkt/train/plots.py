"""ROC plots and learning curves for the benchmark (matplotlib, Agg backend, atomic PNG writes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

from ecgkt.atomic_files import replacing

FPR_GRID = np.linspace(0.0, 1.0, 201)


def macro_roc(targets: NDArray[np.float32], probabilities: NDArray[np.float32]) -> NDArray[np.float64] | None:
    """Macro-averaged ROC: each scorable label's TPR interpolated on a common FPR grid, then averaged.

    Unknown targets (NaN) are masked per label, as in the macro AUROC; None when no label is scorable.
    """
    curves = []
    for k in range(targets.shape[1]):
        known = np.isfinite(targets[:, k])
        y = targets[known, k]
        if y.size == 0 or y.min() == y.max():
            continue
        fpr, tpr, _ = roc_curve(y, probabilities[known, k])
        curves.append(np.interp(FPR_GRID, fpr, tpr))
    return np.mean(curves, axis=0) if curves else None


def _save(figure: plt.Figure, path: Path) -> Path:
    try:
        with replacing(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def plot_roc(
    path: Path,
    title: str,
    curves: Mapping[str, tuple[NDArray[np.float32], NDArray[np.float32], float]],
) -> Path:
    """One macro-averaged ROC curve per model: curves[name] = (targets, probabilities, macro AUROC)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (targets, probabilities, auroc) in curves.items():
        tpr = macro_roc(targets, probabilities)
        if tpr is not None:
            axis.plot(FPR_GRID, tpr, label=f"{name} (AUROC {auroc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("False positive rate")
    axis.set_ylabel("True positive rate (macro average over labels)")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def plot_learning_curves(path: Path, histories: Mapping[str, Sequence[Mapping[str, float]]]) -> Path:
    """Per stage: training loss and the validation metric (macro AUROC, or loss for pretraining)."""
    names = [name for name, history in histories.items() if history]
    n_cols = min(3, max(1, len(names)))
    n_rows = max(1, -(-len(names) // n_cols))
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.2 * n_rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.set_visible(False)
    for axis, name in zip(axes.flat, names, strict=False):
        history = histories[name]
        epochs = [row["epoch"] for row in history]
        if any("train_loss" in row for row in history):
            axis.plot(epochs, [row.get("train_loss", np.nan) for row in history], label="train loss")
        if any("val_macro_auroc" in row for row in history):
            twin = axis.twinx()
            twin.plot(epochs, [row.get("val_macro_auroc", np.nan) for row in history], color="C2", label="val AUROC")
            twin.set_ylabel("val macro AUROC", color="C2")
        elif any("val_loss" in row for row in history):
            axis.plot(epochs, [row.get("val_loss", np.nan) for row in history], label="val loss")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("epoch")
        axis.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    return _save(figure, path)
