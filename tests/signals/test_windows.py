"""Window planning and the resampled-length helper the readers use to plan at read time."""

from __future__ import annotations

import numpy as np
import pytest

from ecgkt.signals.preprocess import resample, resampled_length
from ecgkt.signals.windows import WindowError, describe_plan, plan_windows, split_windows


def test_plan_uses_every_full_window_and_reports_the_tail() -> None:
    plan = plan_windows(1100, window=250, max_windows=None)
    assert plan.starts == (0, 250, 500, 750)
    assert plan.unused_tail_samples == 100
    assert not plan.capped
    assert describe_plan(plan, 100) == "4 window(s) of 2.5 s; last 1.00 s unused"


def test_capped_plan_spreads_windows_over_the_whole_record() -> None:
    plan = plan_windows(250 * 1000, window=250, max_windows=5)
    assert plan.capped
    starts = np.array(plan.starts)
    assert len(starts) == 5 and starts[0] == 0 and starts[-1] == 999 * 250  # first and last window
    assert (starts % 250 == 0).all()  # still on the non-overlapping grid
    np.testing.assert_allclose(np.diff(starts), 999 * 250 / 4, atol=250)  # evenly spread
    assert "spread evenly over 1000 available" in describe_plan(plan, 100)


def test_too_short_and_invalid_arguments() -> None:
    with pytest.raises(WindowError, match="shorter than one window"):
        plan_windows(249)
    with pytest.raises(ValueError, match="window must be positive"):
        plan_windows(1000, window=0)
    with pytest.raises(ValueError, match="max_windows must be positive"):
        plan_windows(1000, max_windows=0)


def test_split_windows_copies_the_planned_slices() -> None:
    signal = np.arange(12 * 1000, dtype=np.float64).reshape(12, 1000)
    windows = split_windows(signal, plan_windows(1000))
    assert windows.shape == (4, 12, 250) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[2], signal[:, 500:750])
    with pytest.raises(ValueError, match="does not match"):
        split_windows(signal[:, :900], plan_windows(1000))


@pytest.mark.parametrize("source_hz", [100, 128, 250, 257, 360, 500, 999.5, 1000])
@pytest.mark.parametrize("n_samples", [641, 1000, 5003])
def test_resampled_length_matches_resample(source_hz: float, n_samples: int) -> None:
    produced = resample(np.zeros((1, n_samples)), source_hz, 100).shape[1]
    assert resampled_length(n_samples, source_hz, 100) == produced
