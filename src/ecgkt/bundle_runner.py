"""Running a bundle's model on windows: the runner interface and the training-time window average.

Every consumer of a bundle's outputs (the prediction engine, the calibration and explanation
evaluation on a store) goes through these two functions, so all of them average exactly as
training evaluates. A runner is any callable windows (W, 12, L) → per-window (diagnosis logits,
lab logits): the torch model here, or an onnxruntime session in the service.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

from ecgkt.bundle import EcgOnlyModel

__all__ = ["RUNNER_CHUNK_WINDOWS", "Runner", "torch_runner", "window_average"]

RUNNER_CHUNK_WINDOWS = 64

Runner = Callable[[NDArray[np.float32]], tuple[NDArray[np.float32], NDArray[np.float32]]]


def torch_runner(model: EcgOnlyModel, chunk_windows: int = RUNNER_CHUNK_WINDOWS) -> Runner:
    """Windows (W, 12, L) → per-window (diagnosis logits, lab logits) from the torch model."""

    def run(windows: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        diag_parts, lab_parts = [], []
        with torch.inference_mode():
            for start in range(0, windows.shape[0], chunk_windows):
                batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + chunk_windows], np.float32))
                diag, lab = model(batch)
                diag_parts.append(diag.float().numpy())
                lab_parts.append(lab.float().numpy())
        return np.concatenate(diag_parts).astype(np.float32), np.concatenate(lab_parts).astype(np.float32)

    return run


def window_average(logits: NDArray[np.floating]) -> NDArray[np.float32]:
    """Mean of the window sigmoids along axis -2: (…, W, C) → (…, C). The training-time evaluation."""
    values = np.asarray(logits, dtype=np.float64)
    return (0.5 * (1.0 + np.tanh(0.5 * values))).mean(axis=-2).astype(np.float32)
