"""Per-lead signal sanity (flat, all-NaN, saturated): one implementation for the builder and inference.

The cohort builder counts these as `signal.flat_lead` / `signal.saturated_lead` events; inference
notes them per lead in the prediction, the report and the service response. Sharing the rule keeps
"what the model was trained on" and "what we warn about at inference" the same thing.

- flat: peak-to-peak below `FLAT_PTP_MV` (1 nV: a disconnected or zero-filled channel), or no
  finite sample at all;
- saturated: at least `SATURATION_SHARE` of the samples sit exactly at the lead's own maximum or
  minimum, and that rail is at least `SATURATION_MIN_MV` from zero. An amplifier or ADC driven into
  its rail clips to one value for whole stretches; a real QRS peak above 2.5 mV lasts a few
  samples (at 500 Hz a 2 % share is 100 samples on the rail in 10 s). The amplitude condition
  keeps quantisation plateaus of small, slow waves (a 0.1 mV T wave stored at 5 µV resolution sits
  on its peak value for tens of samples) from counting; a recorder that saturates below 2.5 mV is
  not detected (documented limit).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FLAT_PTP_MV", "SATURATION_MIN_MV", "SATURATION_SHARE", "LeadQuality", "lead_quality"]

FLAT_PTP_MV = 1e-6
SATURATION_SHARE = 0.02
SATURATION_MIN_MV = 2.5


@dataclass(frozen=True)
class LeadQuality:
    """Row indices (of the array given) that are flat (incl. all-NaN) or saturated."""

    flat: tuple[int, ...]
    saturated: tuple[int, ...]
    n_leads: int

    @property
    def all_flat(self) -> bool:
        return len(self.flat) == self.n_leads


def lead_quality(signal: NDArray[np.floating]) -> LeadQuality:
    """Check every row of a (leads, samples) array in physical units (mV); NaN samples are ignored."""
    values = np.asarray(signal)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: flat
        high = np.nanmax(values, axis=1)
        low = np.nanmin(values, axis=1)
    ptp = high - low
    flat = ~np.isfinite(ptp) | (ptp < FLAT_PTP_MV)
    n_finite = np.count_nonzero(np.isfinite(values), axis=1)
    enough = SATURATION_SHARE * np.maximum(n_finite, 1)
    with np.errstate(invalid="ignore"):
        at_high = (np.count_nonzero(values == high[:, None], axis=1) >= enough) & (high >= SATURATION_MIN_MV)
        at_low = (np.count_nonzero(values == low[:, None], axis=1) >= enough) & (low <= -SATURATION_MIN_MV)
    saturated = ~flat & (at_high | at_low)
    return LeadQuality(
        flat=tuple(int(i) for i in np.flatnonzero(flat)),
        saturated=tuple(int(i) for i in np.flatnonzero(saturated)),
        n_leads=values.shape[0],
    )
