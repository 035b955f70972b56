"""Running a bundle over a fold of a dataset store, for calibration and explanation evaluation.

Store signals are already preprocessed (100 Hz, filled, clipped), so they are only cut into the
same windows inference uses (`signals.windows`), run through the same runner, and averaged with
the same `window_average` as `Predictor.predict`: calibration is fitted on exactly what the
engine later produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.bundle import Bundle
from ecgkt.bundle_runner import Runner, torch_runner, window_average
from ecgkt.errors import UserError
from ecgkt.signals.windows import plan_windows, split_windows
from ecgkt.store import Split, Store

RECORDS_PER_BATCH = 32


class StoreMismatchError(UserError, ValueError):
    """A store that does not fit the bundle (other sampling rate, labels missing)."""


@dataclass(frozen=True)
class FoldOutputs:
    """Per-window logits and targets of one fold, labels in the BUNDLE's order."""

    split: str
    indices: NDArray[np.int64]
    diagnosis_logits: NDArray[np.float32]  # (N, W, K)
    lab_logits: NDArray[np.float32]  # (N, W, P)
    diagnosis_targets: NDArray[np.float32]  # (N, K), NaN unknown
    lab_targets: NDArray[np.float32]  # (N, P), NaN unknown

    @property
    def diagnosis_probability(self) -> NDArray[np.float32]:
        return window_average(self.diagnosis_logits)

    @property
    def lab_probability(self) -> NDArray[np.float32]:
        return window_average(self.lab_logits)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def label_columns(bundle_labels: Sequence[str], store_labels: Sequence[str], what: str, store: Store) -> list[int]:
    """Store column of each bundle label; every bundle label must exist in the store."""
    position = {name: i for i, name in enumerate(store_labels)}
    missing = [name for name in bundle_labels if name not in position]
    if missing:
        raise StoreMismatchError(
            f"{store.path}: {len(missing)} of the bundle's {what} labels are not in this store "
            f"(e.g. {', '.join(missing[:5])}); use the store the bundle was trained on"
        )
    return [position[name] for name in bundle_labels]


def check_compatible(bundle: Bundle, store: Store) -> None:
    bundle_rate = bundle.manifest.preprocessing.sampling_rate_hz
    store_rate = store.manifest.preprocessing.sampling_rate_hz
    if bundle_rate != store_rate:
        raise StoreMismatchError(f"{store.path}: signals at {store_rate} Hz, the bundle expects {bundle_rate} Hz")


def record_windows(store: Store, indices: NDArray[np.int64], window: int) -> NDArray[np.float32]:
    """(N, W, 12, window) windows of store records, cut exactly as inference cuts them."""
    plan = plan_windows(store.manifest.preprocessing.num_samples, window)
    out = np.empty((len(indices), len(plan.starts), 12, window), dtype=np.float32)
    for row, index in enumerate(indices):
        out[row] = split_windows(np.asarray(store.signals[int(index)], dtype=np.float32), plan)
    return out


def fold_outputs(
    bundle: Bundle,
    store: Store,
    split: Split,
    runner: Runner | None = None,
    *,
    max_records: int | None = None,
    seed: int = 0,
    progress_label: str | None = None,
) -> FoldOutputs:
    """Run the bundle over one split of the store (optionally a seeded subsample of it)."""
    from rich.progress import Progress

    check_compatible(bundle, store)
    manifest = bundle.manifest
    indices = store.split_indices(split)
    if max_records is not None and len(indices) > max_records:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(indices, size=max_records, replace=False))
    diag_cols = label_columns(manifest.diagnosis_labels, store.manifest.diagnosis_labels, "diagnosis", store)
    lab_cols = label_columns(manifest.lab_labels, store.manifest.lab_labels, "lab", store)
    run = runner if runner is not None else torch_runner(bundle.model)
    window = manifest.preprocessing.window_samples
    diag_parts: list[NDArray[np.float32]] = []
    lab_parts: list[NDArray[np.float32]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(progress_label or f"running the model on the {split} fold", total=len(indices))
        for start in range(0, len(indices), RECORDS_PER_BATCH):
            windows = record_windows(store, indices[start : start + RECORDS_PER_BATCH], window)
            n, w = windows.shape[:2]
            diag, lab = run(windows.reshape(n * w, *windows.shape[2:]))
            diag_parts.append(diag.reshape(n, w, -1))
            lab_parts.append(lab.reshape(n, w, -1))
            progress.advance(task, n)
    empty_shape = (0, len(plan_windows(store.manifest.preprocessing.num_samples, window).starts))
    diagnosis_targets = store.diagnosis_targets()[indices][:, diag_cols]
    lab_targets = store.lab_targets()[indices][:, lab_cols]
    return FoldOutputs(
        split=split,
        indices=indices,
        diagnosis_logits=np.concatenate(diag_parts)
        if diag_parts
        else np.zeros((*empty_shape, len(diag_cols)), np.float32),
        lab_logits=np.concatenate(lab_parts) if lab_parts else np.zeros((*empty_shape, len(lab_cols)), np.float32),
        diagnosis_targets=diagnosis_targets.astype(np.float32),
        lab_targets=lab_targets.astype(np.float32),
    )
