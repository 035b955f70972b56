"""`resample` is scipy's resample_poly(padtype="line") computed faster: same filter, same numbers.

The store was built and the models trained on resample_poly's output, so the fast routes must give
the same float32 values (up to float32 rounding) for every rate ratio and record length.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecgkt.signals.preprocess import (
    PreprocessSpec,
    _lowpass_taps,
    preprocess,
    resample,
    resample_reference,
    resampled_length,
)


def _ecg_like(n: int, seed: int = 0) -> np.ndarray:
    """A random walk with a trend: exercises the "line" edge extension, float32 like EcgInput."""
    rng = np.random.default_rng(seed)
    walk = rng.normal(0.0, 0.05, (12, n)).cumsum(axis=1) + np.linspace(0.0, 1.5, n)
    return walk.astype(np.float32)


def _assert_float32_equal(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape and ours.dtype == reference.dtype == np.float32
    # Only the summation order differs: at most one float32 rounding step of the signal's scale.
    tolerance = np.finfo(np.float32).eps * max(1.0, float(np.abs(reference).max()))
    assert float(np.abs(ours.astype(np.float64) - reference).max()) <= tolerance


@pytest.mark.parametrize(
    ("source_hz", "seconds"),
    [(500, 10.0), (500, 2.5), (500, 61.3), (1000, 10.0), (250, 10.0), (360, 10.0), (257, 7.0), (100, 10.0)],
)
def test_resample_equals_the_reference(source_hz: int, seconds: float) -> None:
    signal = _ecg_like(round(source_hz * seconds), seed=source_hz)
    ours = resample(signal, source_hz, 100)
    _assert_float32_equal(ours, resample_reference(signal, source_hz, 100))
    assert ours.shape[1] == resampled_length(signal.shape[1], source_hz, 100)


def test_short_signals_use_scipy_directly() -> None:
    signal = _ecg_like(90)  # shorter than the 101-tap filter at 500 → 100 Hz
    np.testing.assert_array_equal(resample(signal, 500, 100), resample_reference(signal, 500, 100))


def test_one_dimensional_input() -> None:
    signal = _ecg_like(5000)[0]
    _assert_float32_equal(resample(signal, 500, 100), resample_reference(signal, 500, 100))


def test_cached_taps_are_scipys_default_filter() -> None:
    """Passing the cached taps as `window` reproduces resample_poly's own filter design exactly."""
    x = _ecg_like(3000).astype(np.float64)
    for up, down in ((1, 5), (1, 10), (2, 5), (5, 18)):
        np.testing.assert_array_equal(
            resample_poly(x, up, down, axis=-1, padtype="line", window=_lowpass_taps(up, down)),
            resample_poly(x, up, down, axis=-1, padtype="line"),
        )
    assert not _lowpass_taps(1, 5).flags.writeable  # shared between calls: must not be modified


def test_preprocess_with_nans_and_clipping_matches_the_reference() -> None:
    signal = _ecg_like(5000) * 4
    signal[2, 100:180] = np.nan
    out, n_filled = preprocess(signal, 500, PreprocessSpec())
    assert n_filled == 80 and np.abs(out).max() <= 3.0
    filled = signal.copy()
    positions = np.arange(signal.shape[1])
    bad = np.isnan(filled[2])
    filled[2, bad] = np.interp(positions[bad], positions[~bad], filled[2, ~bad])
    _assert_float32_equal(out, np.clip(resample_reference(filled, 500, 100), -3.0, 3.0))
