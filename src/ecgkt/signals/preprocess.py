"""The one preprocessing path for ECGs, used identically by the cohort builder and by inference.

Store and model see: 12 canonical leads, `TARGET_RATE_HZ`, NaN stretches linearly interpolated,
amplitudes in mV clipped to ±`CLIP_MV`. Sharing this code is what keeps training and serving
from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample_poly

TARGET_RATE_HZ = 100
RECORD_SECONDS = 10.0
CLIP_MV = 3.0


@dataclass(frozen=True, slots=True)
class PreprocessSpec:
    """Everything needed to reproduce the store's signals; written into stores and model bundles."""

    sampling_rate_hz: int = TARGET_RATE_HZ
    record_seconds: float = RECORD_SECONDS
    clip_mv: float = CLIP_MV

    @property
    def num_samples(self) -> int:
        return round(self.sampling_rate_hz * self.record_seconds)


def interpolate_nans(signal: NDArray[np.floating]) -> tuple[NDArray[np.float32], int]:
    """Linearly interpolate NaN/inf stretches per lead; an all-NaN lead becomes zeros (flat).

    Returns the filled signal and the number of samples that were filled, so callers can count
    and report what they repaired.
    """
    out = np.asarray(signal, dtype=np.float32).copy()
    bad = ~np.isfinite(out)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return out, 0
    positions = np.arange(out.shape[-1])
    for lead in range(out.shape[0]):
        mask = bad[lead]
        if not mask.any():
            continue
        if mask.all():
            out[lead] = 0.0
            continue
        out[lead, mask] = np.interp(positions[mask], positions[~mask], out[lead, ~mask])
    return out, n_bad


def resample(signal: NDArray[np.floating], source_hz: float, target_hz: float) -> NDArray[np.float32]:
    """Polyphase resampling along the last axis (anti-aliased), exact for rational rate ratios."""
    if source_hz <= 0 or target_hz <= 0:
        raise ValueError(f"sampling rates must be positive, got {source_hz} -> {target_hz}")
    if source_hz == target_hz:
        return np.asarray(signal, dtype=np.float32)
    ratio = Fraction(target_hz / source_hz).limit_denominator(1000)
    # padtype='line' extrapolates the trend at the edges instead of zero-padding, which otherwise
    # distorts the first and last samples by up to a few tenths of a mV.
    out = resample_poly(
        np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1, padtype="line"
    )
    return out.astype(np.float32)


def preprocess(
    signal_mv: NDArray[np.floating], source_hz: float, spec: PreprocessSpec = PreprocessSpec()
) -> tuple[NDArray[np.float32], int]:
    """(12, n) signal in mV, canonical lead order → (12, m) at the spec's rate, filled and clipped.

    The length is not forced here: callers decide whether to window (inference) or to require
    exactly `spec.num_samples` (store). Returns (signal, number of NaN samples filled).
    """
    filled, n_filled = interpolate_nans(signal_mv)
    out = resample(filled, source_hz, spec.sampling_rate_hz)
    np.clip(out, -spec.clip_mv, spec.clip_mv, out=out)
    return out, n_filled


def resampled_length(n_samples: int, source_hz: float, target_hz: float) -> int:
    """Number of samples `resample` returns for `n_samples`, without resampling.

    Readers use it to check a record's length and plan its windows at read time, using exactly the
    rate ratio `resample` uses.
    """
    if source_hz <= 0 or target_hz <= 0:
        raise ValueError(f"sampling rates must be positive, got {source_hz} -> {target_hz}")
    if source_hz == target_hz:
        return n_samples
    ratio = Fraction(target_hz / source_hz).limit_denominator(1000)
    return -(-n_samples * ratio.numerator // ratio.denominator)
