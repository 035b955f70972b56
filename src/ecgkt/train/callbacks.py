"""Lightning callbacks ecgkt adds to every run.

`RngStateCallback` exists because Lightning checkpoints hold model, optimiser, scheduler and loop
state but not the global random generators; without them the dropout masks after a resume would
differ from a straight run. The states are stored as plain Python lists and tensors so the
checkpoint stays loadable with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RngStateCallback(L.Callback):
    """Save the torch (CPU and CUDA), NumPy and Python RNG states in checkpoints; restore on resume."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
        assert isinstance(keys, np.ndarray)
        version, python_state, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
            "python": [version, list(python_state), gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        kind, keys, position, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
        version, python_state, gauss = state_dict["python"]
        random.setstate((version, tuple(python_state), gauss))


class StopAfterEpochs(L.Callback):
    """Raise `SimulatedInterruptionError` at the start of epoch `epoch` — used by tests to emulate a kill
    after the checkpoint of the previous epoch was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.epoch:
            raise SimulatedInterruptionError(f"simulated kill at the start of epoch {trainer.current_epoch}")


class SimulatedInterruptionError(RuntimeError):
    """Raised by `StopAfterEpochs`."""
