"""Recording artefacts of a 12-lead ED cart, generated per *electrode* so lead relations survive.

A real cart measures nine electrode potentials (RA, LA, LL, V1-V6) and forms the leads from them:
I = LA - RA, II = LL - RA, Vi = Vi - WCT with the Wilson central terminal WCT = (RA + LA + LL) / 3.
Noise that enters at an electrode therefore appears in every lead built from that electrode, and
Einthoven's and Goldberger's relations still hold exactly on the noisy signal. This module makes the
electrode noise; `waveform` adds it to the electrode-referenced independent leads.

All noise sources are drawn in the frequency domain and synthesised with one inverse real FFT per
record: baseline wander (0.15-0.5 Hz), band-limited muscle noise (20-150 Hz) and mains hum (a single
bin when the mains frequency falls on the FFT grid, as 60 Hz does for 10 s records). That keeps a
record's noise to about one normal draw per noisy bin, which the speed budget (~3 ms/record) needs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import NoiseParameters

FloatArray = NDArray[np.float64]

ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
WANDER_BAND_HZ = (0.15, 0.5)
MUSCLE_BAND_HZ = (20.0, 150.0)
# A lead is the difference of two electrodes, so its noise variance is about twice an electrode's.
_ELECTRODE_PER_LEAD = 1.0 / np.sqrt(2.0)
# The cart's high-pass filter (0.05-0.5 Hz) makes an electrode "pop" decay instead of persisting.
_ARTIFACT_DECAY_S = 0.4


@dataclass(frozen=True, slots=True)
class ElectrodeNoise:
    """Noise per electrode (9, n) in mV, and which artefacts were actually rendered."""

    potentials: NDArray[np.float32]
    artifact_electrode: str | None


@functools.lru_cache(maxsize=16)
def _band_bins(lo_hz: float, hi_hz: float, fs: int, n_samples: int) -> NDArray[np.intp]:
    freqs = np.fft.rfftfreq(n_samples, d=1.0 / fs)
    return np.flatnonzero((freqs >= lo_hz) & (freqs <= hi_hz))


def _fill_random_band(spectrum: NDArray[np.complex64], bins: NDArray[np.intp], lead_sd_mv: FloatArray,
                      n_samples: int, rng: np.random.Generator) -> None:
    """Put random coefficients on the contiguous `bins` so each row has standard deviation `lead_sd_mv`.

    With numpy's irfft normalisation a bin with coefficient c contributes variance
    4 * E[Re(c)^2] / n^2, so a band of B bins with per-component sd s has variance 4 B s^2 / n^2.
    Real and imaginary parts are *uniform* (sd 1 after scaling by sqrt(12)), not normal: each output
    sample sums hundreds of bins, so it is Gaussian anyway (central limit theorem), and uniform
    float32 draws are about four times cheaper, which matters at ~3 ms per record.
    """
    if bins.size == 0:
        return
    scale = (lead_sd_mv * n_samples / (2.0 * np.sqrt(bins.size)) * np.sqrt(12.0)).astype(np.float32)
    draws = (rng.random((spectrum.shape[0], 2 * bins.size), dtype=np.float32) - np.float32(0.5))
    spectrum[:, bins[0]:bins[-1] + 1] = draws.view(np.complex64) * scale[:, None]


def electrode_noise(noise: NoiseParameters, rng: np.random.Generator, *, fs: int,
                    n_samples: int) -> ElectrodeNoise:
    """Baseline wander, muscle noise, mains hum and an optional electrode pop, per electrode."""
    n_electrodes = len(ELECTRODES)
    spectrum = np.zeros((n_electrodes, n_samples // 2 + 1), dtype=np.complex64)
    if noise.baseline_wander_mv > 0:
        # Limb electrodes move with breathing more than chest ones; vary per electrode.
        sd = noise.baseline_wander_mv * _ELECTRODE_PER_LEAD * rng.lognormal(0.0, 0.4, n_electrodes)
        _fill_random_band(spectrum, _band_bins(*WANDER_BAND_HZ, fs, n_samples), sd, n_samples, rng)
    if noise.muscle_mv > 0:
        # Tremor is uneven across electrodes: some leads are visibly noisier than others.
        sd = noise.muscle_mv * _ELECTRODE_PER_LEAD * rng.lognormal(0.0, 0.5, n_electrodes)
        hi = min(MUSCLE_BAND_HZ[1], 0.45 * fs)
        _fill_random_band(spectrum, _band_bins(MUSCLE_BAND_HZ[0], hi, fs, n_samples), sd, n_samples, rng)
    mains_bin = noise.mains_hz * n_samples / fs
    on_grid = abs(mains_bin - round(mains_bin)) < 1e-9 and 0 < round(mains_bin) < spectrum.shape[1] - 1
    mains_amp = noise.mains_mv * _ELECTRODE_PER_LEAD * rng.uniform(0.5, 1.5, n_electrodes)
    mains_phase = rng.uniform(0.0, 2 * np.pi, n_electrodes)
    if noise.mains_mv > 0 and on_grid:
        spectrum[:, round(mains_bin)] += mains_amp * n_samples / 2.0 * np.exp(1j * mains_phase)
    # complex64 in, float32 out (no copy): noise needs no more precision.
    potentials = np.fft.irfft(spectrum, n=n_samples, axis=1).astype(np.float32, copy=False)
    if noise.mains_mv > 0 and not on_grid:
        t = np.arange(n_samples) / fs
        mains_angle = 2 * np.pi * noise.mains_hz * t[None, :] + mains_phase[:, None]
        potentials += (mains_amp[:, None] * np.cos(mains_angle)).astype(np.float32)
    artifact_electrode = None
    if noise.electrode_artifact:
        which = int(rng.integers(n_electrodes))
        artifact_electrode = ELECTRODES[which]
        start = int(rng.uniform(0.05, 0.9) * n_samples)
        step_mv = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)
        t_after = np.arange(n_samples - start) / fs
        potentials[which, start:] += (step_mv * np.exp(-t_after / _ARTIFACT_DECAY_S)).astype(np.float32)
    return ElectrodeNoise(potentials=potentials, artifact_electrode=artifact_electrode)


def noise_on_independent_leads(potentials: NDArray[np.float32]) -> NDArray[np.float32]:
    """Electrode noise (9, n) -> noise on the independent leads I, II, V1..V6 (8, n)."""
    ra, la, ll = potentials[0], potentials[1], potentials[2]
    wilson = (ra + la + ll) / 3.0
    out = np.empty((8, potentials.shape[1]), dtype=potentials.dtype)
    out[0] = la - ra
    out[1] = ll - ra
    out[2:] = potentials[3:] - wilson[None, :]
    return out


@dataclass(frozen=True, slots=True)
class RecordDefects:
    """Which storage defects were applied (for the quality statement and for tests)."""

    nan_leads: tuple[int, ...]
    nan_span: tuple[int, int] | None
    flat_lead: int | None


def apply_record_defects(signal: NDArray[np.float32], noise: NoiseParameters, rng: np.random.Generator,
                         *, fs: int) -> RecordDefects:
    """NaN stretches and a disconnected lead, applied in place on the 12-lead (MIMIC order) signal.

    The flat lead is a precordial one: a lost chest electrode flattens only its own lead, so the
    limb-lead relations still hold (a lost limb electrode would corrupt four leads at once).
    NaN stretches (0.5-2 s) hit either all leads (a gap in the export) or one to three leads.
    """
    n_leads, n_samples = signal.shape
    nan_leads: tuple[int, ...] = ()
    nan_span: tuple[int, int] | None = None
    flat_lead: int | None = None
    if noise.flat_lead:
        flat_lead = int(rng.integers(6, 12))
        signal[flat_lead] = 0.0
    if noise.nan_stretch:
        length = min(n_samples, int(rng.uniform(0.5, 2.0) * fs))
        start = int(rng.integers(0, n_samples - length + 1))
        if rng.random() < 0.5:
            nan_leads = tuple(range(n_leads))
        else:
            count = int(rng.integers(1, 4))
            nan_leads = tuple(sorted(int(i) for i in rng.choice(n_leads, size=count, replace=False)))
        signal[list(nan_leads), start:start + length] = np.nan
        nan_span = (start, start + length)
    return RecordDefects(nan_leads=nan_leads, nan_span=nan_span, flat_lead=flat_lead)
