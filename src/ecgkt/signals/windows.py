"""Cutting a preprocessed record into the model's fixed-length windows.

The model sees 2.5 s windows (250 samples at 100 Hz). Training evaluates a 10 s record as its 4
non-overlapping windows and averages the sigmoid outputs; inference does the same for records of
any length, so a 10 s input is treated exactly like a store record. This module is pure array logic
(no file formats, no error wording about files); `readers.prepare_windows` ties it to `EcgInput`.

Policy (documented in signals/README.md):
- windows are non-overlapping and start at sample 0; a tail shorter than one window is dropped;
- a record shorter than one window cannot be windowed (`WindowError`);
- records longer than `max_windows` windows are sampled with `max_windows` windows spread evenly
  over the whole record, so a long recording is summarised from beginning to end at bounded cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.errors import UserError

WINDOW_SAMPLES = 250
# 120 windows = 5 minutes at 100 Hz; about 1.4 MB of float32 input, a few seconds of CPU inference.
MAX_WINDOWS = 120


class WindowError(UserError, ValueError):
    """A signal that cannot be cut into even one window."""


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """Where the windows of one record start, and what was left out (for the input notes)."""

    starts: tuple[int, ...]
    window: int
    n_samples: int
    available_windows: int

    @property
    def capped(self) -> bool:
        return len(self.starts) < self.available_windows

    @property
    def unused_tail_samples(self) -> int:
        return self.n_samples - self.available_windows * self.window


def plan_windows(
    n_samples: int, window: int = WINDOW_SAMPLES, max_windows: int | None = MAX_WINDOWS
) -> WindowPlan:
    """Start offsets of non-overlapping windows; evenly spread (still on the window grid) when capped."""
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    if max_windows is not None and max_windows <= 0:
        raise ValueError(f"max_windows must be positive or None, got {max_windows}")
    available = n_samples // window
    if available == 0:
        raise WindowError(f"{n_samples} samples is shorter than one window of {window} samples")
    if max_windows is None or available <= max_windows:
        chosen = np.arange(available)
    else:
        # Evenly spaced, distinct grid positions including the first and last window.
        chosen = np.unique(np.round(np.linspace(0, available - 1, max_windows)).astype(int))
    return WindowPlan(
        starts=tuple(int(i) * window for i in chosen),
        window=window,
        n_samples=n_samples,
        available_windows=available,
    )


def split_windows(signal: NDArray[np.floating], plan: WindowPlan) -> NDArray[np.float32]:
    """(C, n) signal → (W, C, window) float32 array, one contiguous copy (safe to hand to torch/ONNX)."""
    if signal.ndim != 2 or signal.shape[1] != plan.n_samples:
        raise ValueError(f"signal of shape {signal.shape} does not match a plan for {plan.n_samples} samples")
    out = np.empty((len(plan.starts), signal.shape[0], plan.window), dtype=np.float32)
    for i, start in enumerate(plan.starts):
        out[i] = signal[:, start : start + plan.window]
    return out


def describe_plan(plan: WindowPlan, sampling_rate_hz: float) -> str:
    """One human-readable note: how many windows were used and what was left out."""
    seconds = plan.window / sampling_rate_hz
    text = f"{len(plan.starts)} window(s) of {seconds:g} s"
    if plan.capped:
        text += f" spread evenly over {plan.available_windows} available (cap {len(plan.starts)})"
    if plan.unused_tail_samples:
        text += f"; last {plan.unused_tail_samples / sampling_rate_hz:.2f} s unused"
    return text
