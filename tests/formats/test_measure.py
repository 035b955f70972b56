"""ECG measurements against the generator's truth, and refusal to guess on unusable records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgkt.measure import measure_ecg
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.synth.ecg_params import EcgParameters
from ecgkt.synth.waveform import render_ecg

MIMIC = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
PERM = [MIMIC.index(lead) for lead in CANONICAL_LEADS]


@pytest.mark.parametrize(("hr", "pr", "qrs", "qtc", "axis"), [(60, 160, 90, 410, 45), (95, 240, 130, 470, -30)])
def test_intervals_match_the_generator_truth(hr: float, pr: float, qrs: float, qtc: float, axis: float) -> None:
    params = EcgParameters(heart_rate_bpm=hr, pr_ms=pr, qrs_ms=qrs, qtc_ms=qtc, qrs_axis_deg=axis)
    signal, truth = render_ecg(params, np.random.default_rng(7))
    m = measure_ecg(signal[PERM], 500.0)
    assert truth.rr_interval is not None and truth.p_onset is not None
    assert m.heart_rate_bpm == pytest.approx(60000 / truth.rr_interval, abs=3)
    assert m.rhythm_regular is True
    assert m.pr_ms == pytest.approx(truth.qrs_onset - truth.p_onset, abs=20)
    assert m.qrs_ms == pytest.approx(truth.qrs_end - truth.qrs_onset, abs=15)
    assert m.qt_ms == pytest.approx(truth.t_end - truth.qrs_onset, abs=25)
    assert m.qrs_axis_deg == pytest.approx(truth.qrs_axis, abs=10)
    assert m.qtc_bazett_ms == pytest.approx(m.qt_ms / math.sqrt(m.rr_ms / 1000), rel=1e-9)
    assert m.flags == []


def test_unusable_records_are_flagged_not_guessed() -> None:
    flat = measure_ecg(np.zeros((12, 5000)), 500.0)
    assert flat.heart_rate_bpm is None and flat.qt_ms is None and flat.flags
    short = measure_ecg(np.zeros((12, 500)), 500.0)
    assert short.n_beats == 0 and short.flags


def test_atrial_fibrillation_is_irregular() -> None:
    params = EcgParameters(heart_rate_bpm=110, rhythm="atrial_fibrillation")
    signal, _ = render_ecg(params, np.random.default_rng(3))
    m = measure_ecg(signal[PERM], 500.0)
    assert m.rhythm_regular is False
    assert m.rr_cv is not None and m.rr_cv > 0.1
