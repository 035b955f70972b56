"""Synthetic 12-lead ECG renderer (provisional simple body; the dipole model replaces it)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import EcgParameters, MachineMeasurements


def _gauss(t: NDArray[np.float64], centre: NDArray[np.float64], width: float) -> NDArray[np.float64]:
    return np.exp(-0.5 * ((t[None, :] - centre[:, None]) / width) ** 2).sum(axis=0)


def render_ecg(params: EcgParameters, rng: np.random.Generator, *, fs: int = 500,
               n_samples: int = 5000) -> tuple[NDArray[np.float32], MachineMeasurements]:
    """signal: (12, n_samples) float32 in mV in MIMIC lead order; measurements as the cart reports."""
    t = np.arange(n_samples) / fs
    rr = 60.0 / params.heart_rate_bpm
    beats = np.arange(0.3, n_samples / fs, rr)
    qt = params.qtc_ms / 1000 * np.sqrt(rr)
    qrs = _gauss(t, beats, params.qrs_ms / 1000 / 6)
    p = _gauss(t, beats - params.pr_ms / 1000 + 0.05, 0.025) * 0.15 * params.p_amplitude_scale
    tw = _gauss(t, beats + qt - 0.1, 0.04 * params.t_width_scale) * 0.3 * params.t_amplitude_scale
    base = (qrs + p + tw) * params.amplitude_scale
    lead1 = 0.7 * base
    lead2 = 1.0 * base
    sig = np.empty((12, n_samples))
    sig[0], sig[1] = lead1, lead2
    sig[2] = lead2 - lead1
    sig[3] = -(lead1 + lead2) / 2
    sig[4] = lead2 - lead1 / 2
    sig[5] = lead1 - lead2 / 2
    for k in range(6):
        sig[6 + k] = base * (k - 2) / 3
    sig += rng.normal(0, params.noise.muscle_mv, sig.shape)
    measurements = MachineMeasurements(
        rr_interval=rr * 1000, p_onset=40.0, p_end=140.0, qrs_onset=40.0 + params.pr_ms,
        qrs_end=40.0 + params.pr_ms + params.qrs_ms, t_end=40.0 + params.pr_ms + qt * 1000,
        p_axis=60.0, qrs_axis=params.qrs_axis_deg, t_axis=45.0, statements=("Sinus rhythm",),
    )
    return sig.astype(np.float32), measurements
