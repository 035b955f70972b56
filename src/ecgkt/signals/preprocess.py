"""The one preprocessing path for ECGs, used identically by the cohort builder and by inference.

Store and model see: 12 canonical leads, `TARGET_RATE_HZ`, NaN stretches linearly interpolated,
amplitudes in mV clipped to ±`CLIP_MV`. Sharing this code is what keeps training and serving
from drifting apart.

`PreprocessSpec` is the one preprocessing *contract*: a pydantic model built from the named
constants below, written into the store manifest (`store.PreprocessingSpec` is this class) and the
model bundle (`bundle.BundlePreprocessing` is this class), and used as is by the predict engine. It
reads both earlier JSON shapes unchanged: the store's (`num_samples`, `source_sampling_rate_hz`, no
`record_seconds`) and the bundle's (`record_seconds`, `window_samples`, `n_windows`); `num_samples`
is derived (rate × seconds) and still written, so old readers of a store manifest find it.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from scipy.signal import firwin, resample_poly

from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.windows import WINDOW_SAMPLES

TARGET_RATE_HZ = 100
RECORD_SECONDS = 10.0
CLIP_MV = 3.0
# MIMIC-IV-ECG's recording rate (the store notes where its records came from).
SOURCE_RATE_HZ = 500
# Windows a 10 s record is evaluated on (4 × 2.5 s), as training evaluates.
EVAL_WINDOWS = 4
# scipy.signal.resample_poly's defaults, which define the resampling: a Kaiser-windowed (beta 5) sinc
# low-pass of 2·10·max(up, down) + 1 taps.
_KAISER_WINDOW = ("kaiser", 5.0)
_HALF_LENGTH_PER_RATE = 10


class PreprocessSpec(BaseModel):
    """Everything needed to reproduce the store's signals and the model's input; in stores and bundles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling_rate_hz: int = Field(default=TARGET_RATE_HZ, gt=0)
    record_seconds: float = Field(default=RECORD_SECONDS, gt=0)
    clip_mv: float = Field(default=CLIP_MV, gt=0)
    leads: list[str] = Field(default_factory=lambda: list(CANONICAL_LEADS))
    window_samples: int = Field(default=WINDOW_SAMPLES, gt=0)
    n_windows: int = Field(default=EVAL_WINDOWS, gt=0)
    source_sampling_rate_hz: int = Field(default=SOURCE_RATE_HZ, gt=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def num_samples(self) -> int:
        return round(self.sampling_rate_hz * self.record_seconds)

    @model_validator(mode="before")
    @classmethod
    def _store_shape(cls, data: Any) -> Any:
        """A store manifest states `num_samples` instead of `record_seconds`: derive it (and check both)."""
        if not isinstance(data, dict) or "num_samples" not in data:
            return data
        data = dict(data)
        num_samples = data.pop("num_samples")
        rate = data.get("sampling_rate_hz", TARGET_RATE_HZ)
        if isinstance(num_samples, int) and isinstance(rate, int | float) and rate > 0:
            seconds = num_samples / rate
            if "record_seconds" in data and round(rate * data["record_seconds"]) != num_samples:
                raise ValueError(f"num_samples {num_samples} disagrees with record_seconds {data['record_seconds']}")
            data.setdefault("record_seconds", seconds)
        else:
            raise ValueError(f"num_samples must be an integer, got {num_samples!r}")
        return data


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
    """Polyphase resampling along the last axis (anti-aliased), exact for rational rate ratios.

    The definition is `scipy.signal.resample_poly(x, up, down, padtype="line")` in float64 (see
    `resample_reference`). Integer decimation (500 → 100 Hz, 1000 → 100 Hz: every ECG archive we know)
    takes a faster route to the same numbers (`_decimate_line`, equal to float32 rounding); other
    ratios call resample_poly with filter taps designed once per (up, down).
    """
    if source_hz <= 0 or target_hz <= 0:
        raise ValueError(f"sampling rates must be positive, got {source_hz} -> {target_hz}")
    if source_hz == target_hz:
        return np.asarray(signal, dtype=np.float32)
    up, down = _rate_ratio(source_hz, target_hz)
    values = np.asarray(signal)
    if up == 1 and values.shape[-1] > 2 * _HALF_LENGTH_PER_RATE * down:
        out = _decimate_line(values, down)
    else:
        out = resample_poly(
            np.asarray(values, dtype=np.float64), up, down, axis=-1, window=_lowpass_taps(up, down), padtype="line"
        )
    return out.astype(np.float32)


def resample_reference(signal: NDArray[np.floating], source_hz: float, target_hz: float) -> NDArray[np.float32]:
    """`resample`'s definition, spelled out with scipy's defaults (filter designed on every call).

    Kept for the equality tests and the before/after benchmark (benchmarks/predict_overhead.py).
    """
    if source_hz == target_hz:
        return np.asarray(signal, dtype=np.float32)
    ratio = Fraction(target_hz / source_hz).limit_denominator(1000)
    # padtype='line' extrapolates the trend at the edges instead of zero-padding, which otherwise
    # distorts the first and last samples by up to a few tenths of a mV.
    out = resample_poly(
        np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1, padtype="line"
    )
    return out.astype(np.float32)


@lru_cache(maxsize=64)
def _rate_ratio(source_hz: float, target_hz: float) -> tuple[int, int]:
    """(up, down) in lowest terms; Fraction arithmetic is slow enough to matter per call."""
    ratio = Fraction(target_hz / source_hz).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


@lru_cache(maxsize=16)
def _lowpass_taps(up: int, down: int) -> NDArray[np.float64]:
    """resample_poly's default anti-aliasing filter for (up, down), designed once (read-only)."""
    max_rate = max(up, down)
    taps = firwin(2 * _HALF_LENGTH_PER_RATE * max_rate + 1, 1.0 / max_rate, window=_KAISER_WINDOW)
    taps = np.asarray(taps, dtype=np.float64)
    taps.flags.writeable = False
    return taps


@lru_cache(maxsize=16)
def _reversed_taps(down: int) -> NDArray[np.float64]:
    """The decimation filter reversed, contiguous: np.dot with a negative-stride vector is 3× slower."""
    taps = np.ascontiguousarray(_lowpass_taps(1, down)[::-1])
    taps.flags.writeable = False
    return taps


def _decimate_line(values: NDArray[np.floating], down: int) -> NDArray[np.float64]:
    """resample_poly(values, 1, down, padtype="line") as one strided dot product per output sample.

    For up = 1, resample_poly's output n is Σ_j h[j]·x[down·n + H − j] (H = half the filter length),
    with x extended beyond both ends along the line through its first and last samples (upfirdn's
    "line" mode). Here the extension is built explicitly and each output is the dot product of the
    reversed taps with a strided view of the extended signal: no upsampling bookkeeping, no filter
    design per call, single-threaded BLAS dots. It differs from scipy only in summation order (~1e-15).
    """
    reversed_taps = _reversed_taps(down)
    half = (reversed_taps.shape[0] - 1) // 2
    n_in = values.shape[-1]
    n_out = -(-n_in // down)
    flat = values.reshape(-1, n_in)
    first = flat[:, :1].astype(np.float64)
    last = flat[:, -1:].astype(np.float64)
    slope = (last - first) / (n_in - 1)
    steps = np.arange(1, half + 1, dtype=np.float64)
    # float64 throughout, as resample_poly computes; the input (float32 from EcgInput) is widened
    # while it is copied into the extended buffer, so no separate float64 copy is made.
    extended = np.empty((flat.shape[0], n_in + 2 * half), dtype=np.float64)
    extended[:, :half] = first - steps[::-1] * slope
    extended[:, half : half + n_in] = flat
    extended[:, half + n_in :] = last + steps * slope
    row_stride, item = extended.strides
    windows = as_strided(
        extended,
        shape=(flat.shape[0], n_out, reversed_taps.shape[0]),
        strides=(row_stride, down * item, item),
        writeable=False,
    )
    out: NDArray[np.float64] = np.dot(windows, reversed_taps)
    return out.reshape(*values.shape[:-1], n_out)


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
    up, down = _rate_ratio(source_hz, target_hz)
    return -(-n_samples * up // down)
