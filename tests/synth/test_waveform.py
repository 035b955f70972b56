"""The synthetic 12-lead renderer: lead algebra, rhythm, intervals, morphology and the cart's reading.

Morphology tests render without noise so they measure the heart, not the artefacts; the
relation, determinism and defect tests keep the noise on. Every test uses a fixed seed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from ecgkt.mimic.layout import ECG_ADC_GAIN, MIMIC_LEAD_ORDER
from ecgkt.synth.ecg_params import EcgParameters, MachineMeasurements, NoiseParameters
from ecgkt.synth.waveform import (
    INDEPENDENT_LEAD_VECTORS,
    P_WAVE,
    PAC_BEAT,
    PVC_BEAT,
    QRS,
    EcgRenderError,
    beat_schedule,
    build_morphology,
    fibrillatory_waves,
    project_to_leads,
    render_ecg,
)

FS = 500
QUIET = NoiseParameters(baseline_wander_mv=0.0, mains_mv=0.0, muscle_mv=0.0)
L = {name: i for i, name in enumerate(MIMIC_LEAD_ORDER)}


def render(seed: int = 0, **changes: object) -> tuple[NDArray[np.float32], MachineMeasurements]:
    params = replace(EcgParameters(noise=QUIET), **changes)  # type: ignore[arg-type]
    return render_ecg(params, np.random.default_rng(seed))


def r_peaks(lead: NDArray[np.float32]) -> NDArray[np.intp]:
    """Simple R detector for noise-free lead II: local maxima above half the record maximum."""
    x = np.nan_to_num(lead.astype(np.float64))
    threshold = 0.5 * x.max()
    candidates = np.flatnonzero((x[1:-1] > threshold) & (x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:])) + 1
    peaks: list[int] = []
    for c in candidates:
        if not peaks or c - peaks[-1] > int(0.25 * FS):
            peaks.append(int(c))
        elif x[c] > x[peaks[-1]]:
            peaks[-1] = int(c)
    return np.array(peaks)


def beat_windows(signal: NDArray[np.float32], start_ms: float, end_ms: float) -> NDArray[np.float64]:
    """(beats, 12, W) windows around each R peak of lead II, skipping beats cut by the record edge."""
    peaks = r_peaks(signal[L["II"]])
    a, b = int(start_ms * FS / 1000), int(end_ms * FS / 1000)
    keep = [p for p in peaks if p + a >= 0 and p + b <= signal.shape[1]]
    return np.stack([signal[:, p + a:p + b] for p in keep]).astype(np.float64)


# ---- format and lead algebra ------------------------------------------------------------------
def test_shape_dtype_and_mimic_lead_order() -> None:
    signal, measurements = render_ecg(EcgParameters(), np.random.default_rng(0))
    assert signal.shape == (12, 5000) and signal.dtype == np.float32
    assert MIMIC_LEAD_ORDER[4] == "aVF" and MIMIC_LEAD_ORDER[5] == "aVL"
    # Row 4 is aVF (= II - I/2), not aVL: the MIMIC order puts aVF first.
    np.testing.assert_allclose(signal[4], signal[1] - signal[0] / 2, atol=1e-5)
    # A normal axis (~45 deg) makes aVR the most negative limb lead and II strongly positive.
    assert signal[L["aVR"]].min() < -0.4 and signal[L["II"]].max() > 0.6
    assert measurements.statements[-1] in {"Normal ECG", "Borderline ECG", "Abnormal ECG"}


def test_custom_length_and_rate() -> None:
    signal, _ = render_ecg(EcgParameters(), np.random.default_rng(0), fs=250, n_samples=1000)
    assert signal.shape == (12, 1000)
    with pytest.raises(EcgRenderError, match="n_samples"):
        render_ecg(EcgParameters(), np.random.default_rng(0), n_samples=0)
    with pytest.raises(EcgRenderError, match="qtc_ms"):
        render_ecg(EcgParameters(qtc_ms=float("nan")), np.random.default_rng(0))
    with pytest.raises(EcgRenderError, match="heart_rate_bpm"):
        render_ecg(EcgParameters(heart_rate_bpm=0.0), np.random.default_rng(0))


def _assert_limb_relations(x: NDArray[np.float64], atol: float) -> None:
    i, ii, iii, avr, avf, avl = (x[L[n]] for n in ("I", "II", "III", "aVR", "aVF", "aVL"))
    np.testing.assert_allclose(iii, ii - i, atol=atol)
    np.testing.assert_allclose(avr, -(i + ii) / 2, atol=atol)
    np.testing.assert_allclose(avl, i - ii / 2, atol=atol)
    np.testing.assert_allclose(avf, ii - i / 2, atol=atol)


def test_einthoven_goldberger_hold_with_noise_and_after_int16_quantisation() -> None:
    noisy = NoiseParameters(baseline_wander_mv=0.3, mains_mv=0.05, muscle_mv=0.05, electrode_artifact=True)
    for seed in range(4):
        signal, _ = render_ecg(EcgParameters(noise=noisy, ectopic_rate=0.1), np.random.default_rng(seed))
        _assert_limb_relations(signal.astype(np.float64), atol=1e-5)
        # WFDB format 16 at 200 adu/mV: each lead rounds independently, so relations hold to the
        # accumulated rounding error (at most 1.5 adu; 2 adu for the doubled aVR/aVL/aVF forms).
        adu = np.round(signal.astype(np.float64) * ECG_ADC_GAIN)
        i, ii, iii, avr, avf, avl = (adu[L[n]] for n in ("I", "II", "III", "aVR", "aVF", "aVL"))
        assert np.abs(iii - (ii - i)).max() <= 1.5
        assert np.abs(2 * avr + i + ii).max() <= 2.0
        assert np.abs(2 * avl - 2 * i + ii).max() <= 2.0
        assert np.abs(2 * avf - 2 * ii + i).max() <= 2.0


def test_determinism_same_seed_identical_different_seed_differs() -> None:
    params = EcgParameters(ectopic_rate=0.2, noise=NoiseParameters(nan_stretch=True, electrode_artifact=True))
    a, ma = render_ecg(params, np.random.default_rng(7))
    b, mb = render_ecg(params, np.random.default_rng(7))
    c, _ = render_ecg(params, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert ma == mb
    assert not np.array_equal(np.nan_to_num(a), np.nan_to_num(c))


# ---- rhythm -----------------------------------------------------------------------------------
def _rr_cv(signal: NDArray[np.float32]) -> float:
    rr = np.diff(r_peaks(signal[L["II"]])) / FS
    return float(rr.std() / rr.mean())


def test_rr_irregularity_much_higher_in_af_than_sinus() -> None:
    sinus = np.mean([_rr_cv(render(seed)[0]) for seed in range(3)])
    af = np.mean([_rr_cv(render(seed, rhythm="atrial_fibrillation", heart_rate_bpm=90)[0]) for seed in range(3)])
    assert sinus < 0.06
    assert af > 0.12 and af > 3 * sinus


def test_heart_rate_and_rr_measurement_follow_params() -> None:
    for bpm in (50.0, 75.0, 120.0):
        signal, m = render(1, heart_rate_bpm=bpm)
        assert m.rr_interval is not None and abs(m.rr_interval - 60000 / bpm) < 0.06 * 60000 / bpm
        detected = np.diff(r_peaks(signal[L["II"]])).mean() * 1000 / FS
        assert abs(detected - m.rr_interval) < 25
    assert render(1, heart_rate_bpm=50.0)[1].statements[0] == "Sinus bradycardia"
    assert render(1, heart_rate_bpm=120.0)[1].statements[0] == "Sinus tachycardia"


def test_no_p_wave_before_qrs_in_af() -> None:
    """Averaged time-locked to the R peak, a P wave survives in sinus rhythm; AF f-waves cancel."""
    def p_window_peak(signal: NDArray[np.float32]) -> float:
        windows = beat_windows(signal, -260, -80)[:, L["II"]]  # where the P wave sits (PR 160 ms)
        return float(np.abs(windows.mean(axis=0)).max())

    sinus = p_window_peak(render(3)[0])
    af_signal, af_m = render(3, rhythm="atrial_fibrillation", heart_rate_bpm=80, fibrillatory_wave_mv=0.08)
    af = p_window_peak(af_signal)
    assert sinus > 0.1
    assert af < 0.4 * sinus
    assert af_m.p_onset is None and af_m.p_end is None and af_m.p_axis is None
    assert af_m.statements[0].startswith("Atrial fibrillation")


def test_fibrillatory_waves_strongest_in_v1_and_inferior_leads() -> None:
    waves = project_to_leads(fibrillatory_waves(0.1, np.random.default_rng(0), fs=FS, n_samples=5000))
    rms = np.sqrt((waves**2).mean(axis=1))
    assert min(rms[L["V1"]], rms[L["II"]], rms[L["III"]], rms[L["aVF"]]) > 2 * max(rms[L["I"]], rms[L["V6"]])
    spectrum = np.abs(np.fft.rfft(waves[L["V1"]]))
    freqs = np.fft.rfftfreq(5000, 1 / FS)
    assert 4.0 <= freqs[spectrum.argmax()] <= 9.5


def test_premature_beats_timing_and_report() -> None:
    """PVC: early, then a full compensatory pause (two sinus cycles); PAC: resets the sinus node."""
    rr = 60.0 / 75.0
    params = EcgParameters(heart_rate_bpm=75.0, hrv_sd_ms=0.0, ectopic_rate=0.25, noise=QUIET)
    schedule = beat_schedule(params, np.random.default_rng(2), 10.0)
    pvc = np.flatnonzero(schedule.kind == PVC_BEAT)
    pac = np.flatnonzero(schedule.kind == PAC_BEAT)
    pvc, pac = pvc[pvc + 1 < schedule.kind.size], pac[pac + 1 < schedule.kind.size]
    assert pvc.size and pac.size
    assert np.all(schedule.rr_before[pvc] < 0.8 * rr) and np.all(schedule.rr_before[pac] < 0.8 * rr)
    np.testing.assert_allclose(schedule.rr_before[pvc] + schedule.rr_before[pvc + 1], 2 * rr, atol=1e-9)
    assert np.all(schedule.rr_before[pac] + schedule.rr_before[pac + 1] < 2 * rr - 0.1)
    _, m = render(2, ectopic_rate=0.3, pvc_fraction=1.0)
    assert "Premature ventricular complexes" in m.statements
    _, m_af = render(2, ectopic_rate=0.3, rhythm="atrial_fibrillation")
    assert "Premature atrial complexes" not in m_af.statements  # no PACs without an organised atrium


def test_pvc_is_wide_and_has_no_p_wave() -> None:
    morphology = build_morphology(EcgParameters(), np.random.default_rng(0), qt_ref_s=0.38)
    qrs = morphology.pvc.select(morphology.pvc.group == QRS)
    assert float((qrs.start + qrs.rise + qrs.flat + qrs.fall).max() - qrs.start.min()) >= 0.12
    assert not np.any(morphology.pvc.group == P_WAVE)
    assert np.any(morphology.conducted.group == P_WAVE)


# ---- intervals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pr_ms", [130.0, 180.0, 260.0])
def test_pr_measurement_tracks_params(pr_ms: float) -> None:
    _, m = render(4, pr_ms=pr_ms)
    assert m.p_onset is not None and abs((m.qrs_onset or 0) - m.p_onset - pr_ms) <= 12
    assert 25 <= m.p_onset <= 55  # MIMIC convention: P onset ~40 ms into the median-beat window
    assert ("1st degree AV block" in m.statements) == (pr_ms > 200)


@pytest.mark.parametrize("qrs_ms", [80.0, 100.0, 115.0])
def test_qrs_measurement_tracks_params(qrs_ms: float) -> None:
    _, m = render(5, qrs_ms=qrs_ms)
    assert m.qrs_end is not None and m.qrs_onset is not None
    assert abs(m.qrs_end - m.qrs_onset - qrs_ms) <= 12


def test_measured_qt_shorter_for_short_qtc_than_long_qtc() -> None:
    _, short = render(6, qtc_ms=340.0)  # hypercalcaemia-like
    _, long = render(6, qtc_ms=500.0)  # hypocalcaemia / hypomagnesaemia-like
    qt_short = (short.t_end or 0) - (short.qrs_onset or 0)
    qt_long = (long.t_end or 0) - (long.qrs_onset or 0)
    rr = (short.rr_interval or 0) / 1000
    assert qt_long - qt_short > 0.8 * (500 - 340) * np.sqrt(rr)
    assert abs(qt_short - 340 * np.sqrt(rr)) < 20 and abs(qt_long - 500 * np.sqrt(rr)) < 20
    assert "Prolonged QT" in long.statements and "Prolonged QT" not in short.statements


def test_qt_adapts_beat_by_beat_to_rr() -> None:
    """Bazett per beat: at a faster rate the T wave ends sooner after the QRS."""
    _, slow = render(6, heart_rate_bpm=55.0)
    _, fast = render(6, heart_rate_bpm=110.0)
    assert (fast.t_end or 0) - (fast.qrs_onset or 0) < (slow.t_end or 0) - (slow.qrs_onset or 0) - 60


# ---- morphology -------------------------------------------------------------------------------
def _t_amplitude(signal: NDArray[np.float32], leads: tuple[str, ...]) -> float:
    windows = beat_windows(signal, 120, 380)
    return float(np.mean([windows[:, L[n]].max(axis=1).mean() for n in leads]))


def test_t_amplitude_in_v2_to_v4_rises_with_t_amplitude_scale() -> None:
    amplitudes = [_t_amplitude(render(8, t_amplitude_scale=s)[0], ("V2", "V3", "V4")) for s in (0.4, 1.0, 2.0)]
    assert amplitudes[0] < amplitudes[1] < amplitudes[2]
    assert amplitudes[2] > 1.6 * amplitudes[1]
    assert "Tall T waves" in render(8, t_amplitude_scale=2.2, t_width_scale=0.6)[1].statements


def test_hypokalaemia_like_params_give_u_waves_and_flat_t() -> None:
    _, m = render(9, t_amplitude_scale=0.3, u_amplitude_mv=0.2)
    assert "Prominent U waves" in m.statements


def _qrs_window(signal: NDArray[np.float32], lead: str) -> NDArray[np.float64]:
    return beat_windows(signal, -80, 120)[:, L[lead]].mean(axis=0)


def test_lbbb_wide_with_negative_v1_and_broad_lateral_r() -> None:
    signal, m = render(10, bundle_branch_block="lbbb", qrs_ms=150.0)
    assert (m.qrs_end or 0) - (m.qrs_onset or 0) >= 120
    v1, v6 = _qrs_window(signal, "V1"), _qrs_window(signal, "V6")
    assert v1.min() < -0.8 and v1.max() < 0.35 * -v1.min()  # QS / rS: negative-dominant
    assert v6.max() > 0.6 and v6.min() > -0.25  # broad monophasic R, no septal q
    assert "Left bundle branch block" in m.statements


def test_rbbb_wide_with_rsr_prime_in_v1() -> None:
    signal, m = render(11, bundle_branch_block="rbbb", qrs_ms=140.0)
    assert (m.qrs_end or 0) - (m.qrs_onset or 0) >= 120
    v1 = _qrs_window(signal, "V1")
    trough = int(v1.argmin())
    r_before, r_prime = v1[:trough].max(), v1[trough:].max()
    assert r_before > 0.05 and v1[trough] < -0.3 and r_prime > r_before  # r, S, taller R'
    lead_i = _qrs_window(signal, "I")
    assert lead_i[int(lead_i.argmax()):].min() < -0.3  # wide terminal S in I
    assert "Right bundle branch block" in m.statements


def _st_level(signal: NDArray[np.float32], qrs_ms: float = 90.0) -> NDArray[np.float64]:
    """ST at J + 60 ms per lead (R peak sits ~40 ms after QRS onset)."""
    offset = qrs_ms - 40.0 + 60.0
    return beat_windows(signal, offset, offset + 2).mean(axis=(0, 2))


@pytest.mark.parametrize(("territory", "up", "down"), [
    ("anterior", ("V2", "V3"), ("III", "aVF")),
    ("inferior", ("II", "III", "aVF"), ("aVL", "I")),
    ("lateral", ("I", "aVL", "V5", "V6"), ("III", "V1")),
])
def test_st_elevation_in_territory_with_reciprocal_depression(territory: str, up: tuple[str, ...],
                                                              down: tuple[str, ...]) -> None:
    signal, m = render(12, ischaemia_territory=territory, ischaemia_st_mv=0.3)
    st = _st_level(signal)
    assert all(st[L[n]] > 0.12 for n in up), st
    assert all(st[L[n]] < -0.05 for n in down), st
    assert f"ST elevation, consider {territory} injury or acute infarct" in m.statements
    baseline = _st_level(render(12)[0])
    assert np.abs(baseline).max() < 0.05


def test_q_waves_and_t_inversion_in_territory() -> None:
    _, m = render(13, ischaemia_territory="inferior", pathological_q=True, t_inversion=True)
    assert "Inferior infarct, age undetermined" in m.statements
    assert "T wave inversion, consider inferior ischemia" in m.statements
    _, normal = render(13)
    assert not any("infarct" in line or "ischemia" in line for line in normal.statements)


def _sokolow_lyon(signal: NDArray[np.float32]) -> float:
    windows = beat_windows(signal, -80, 120)
    return float((-windows[:, L["V1"]].min(axis=1) + windows[:, L["V5"]].max(axis=1)).mean())


def test_lvh_raises_sokolow_lyon_and_strain_inverts_lateral_t() -> None:
    normal = _sokolow_lyon(render(14)[0])
    lvh_signal, lvh_m = render(14, lvh_voltage_scale=1.9, lvh_strain=True)
    assert normal < 3.0
    assert _sokolow_lyon(lvh_signal) > 3.5 and _sokolow_lyon(lvh_signal) > 1.5 * normal
    assert "Left ventricular hypertrophy with repolarization abnormality" in lvh_m.statements
    t_v6 = beat_windows(lvh_signal, 150, 380)[:, L["V6"]].mean(axis=0)
    assert t_v6.min() < -0.1 and abs(t_v6.min()) > t_v6.max()


@pytest.mark.parametrize("axis", [-60.0, 0.0, 60.0, 110.0])
def test_qrs_axis_measurement_follows_param(axis: float) -> None:
    _, m = render(15, qrs_axis_deg=axis)
    assert m.qrs_axis is not None and abs(m.qrs_axis - axis) <= 10
    # A narrow QRS with axis <= -45 / >= 110 is read as a fascicular block (issue 14), else as axis deviation.
    left = {"Left axis deviation", "Left anterior fascicular block"}
    right = {"Right axis deviation", "Left posterior fascicular block"}
    assert bool(left & set(m.statements)) == (axis < -30)
    assert bool(right & set(m.statements)) == (axis > 90)


def test_amplitude_scale_multiplies_the_heart_signal() -> None:
    small, _ = render(16, amplitude_scale=0.5)
    big, _ = render(16, amplitude_scale=1.0)
    np.testing.assert_allclose(small, big * 0.5, atol=1e-5)


def test_normal_params_read_as_normal_ecg() -> None:
    for seed in range(5):
        _, m = render(seed)
        assert m.statements == ("Sinus rhythm", "Normal ECG"), m.statements


# ---- noise and defects --------------------------------------------------------------------------
def test_nan_stretch_flat_lead_and_poor_quality_when_requested() -> None:
    defects = NoiseParameters(nan_stretch=True, flat_lead=True)
    for seed in range(3):
        signal, m = render_ecg(EcgParameters(noise=defects), np.random.default_rng(seed))
        nan_rows = np.isnan(signal).any(axis=1)
        assert nan_rows.any()
        run = np.isnan(signal[int(np.argmax(nan_rows))]).sum()
        assert 0.5 * FS <= run <= 2.0 * FS
        flat = [i for i in range(12) if np.nanmax(np.abs(signal[i])) == 0.0]
        assert len(flat) == 1 and MIMIC_LEAD_ORDER[flat[0]].startswith("V")
        assert "Poor data quality" in m.statements
    clean, _ = render_ecg(EcgParameters(), np.random.default_rng(0))
    assert not np.isnan(clean).any()


def test_noise_levels_and_quality_statement() -> None:
    quiet, _ = render(17)
    default, m_default = render_ecg(EcgParameters(), np.random.default_rng(17))
    noisy_params = EcgParameters(noise=NoiseParameters(muscle_mv=0.08, baseline_wander_mv=0.3))
    noisy, m_noisy = render_ecg(noisy_params, np.random.default_rng(17))
    hf = [float(np.abs(np.diff(x[L["V5"]])).mean()) for x in (quiet, default, noisy)]
    assert hf[0] < hf[1] < hf[2]
    assert "Poor data quality" not in m_default.statements and "Poor data quality" in m_noisy.statements
    # 60 Hz mains shows up as a spectral line.
    hum, _ = render_ecg(EcgParameters(noise=replace(QUIET, mains_mv=0.1)), np.random.default_rng(17))
    spectrum = np.abs(np.fft.rfft(hum[L["I"]] - quiet[L["I"]]))
    assert np.fft.rfftfreq(5000, 1 / FS)[spectrum.argmax()] == pytest.approx(60.0)


def test_lead_vectors_give_r_wave_progression() -> None:
    """Normal precordial pattern: rS in V1, tall R in V5 (transition around V3)."""
    signal, _ = render(18)
    v1, v5 = _qrs_window(signal, "V1"), _qrs_window(signal, "V5")
    assert -v1.min() > v1.max() and v5.max() > -v5.min()
    assert INDEPENDENT_LEAD_VECTORS.shape == (8, 3)


@pytest.mark.parametrize(("changes", "statement"), [
    ({"rhythm": "atrial_flutter", "heart_rate_bpm": 150.0, "conduction_ratio": 2}, "Atrial flutter with 2:1"),
    ({"rhythm": "atrial_flutter", "heart_rate_bpm": 90.0, "conduction_ratio": 0}, "Atrial flutter with variable"),
    ({"rhythm": "paced", "qrs_ms": 160.0, "qrs_axis_deg": -60.0, "heart_rate_bpm": 70.0},
     "Electronic ventricular pacemaker"),
    ({"av_block": "complete", "heart_rate_bpm": 38.0, "atrial_rate_bpm": 80.0}, "complete heart block"),
    ({"av_block": "mobitz1", "heart_rate_bpm": 60.0, "conduction_ratio": 4}, "Mobitz I"),
    ({"av_block": "mobitz2", "heart_rate_bpm": 50.0, "conduction_ratio": 3}, "Mobitz II"),
    ({"bundle_branch_block": "incomplete_rbbb", "qrs_ms": 108.0}, "Incomplete right bundle branch block"),
    ({"qrs_axis_deg": -60.0, "qrs_ms": 100.0}, "Left anterior fascicular block"),
])
def test_ed_rhythms_and_conduction_are_drawn_and_read(changes: dict[str, object], statement: str) -> None:
    hits = 0
    for seed in range(5):  # the person's anatomy varies per seed; the cart must still see it nearly always
        signal, m = render(seed, **changes)
        assert np.isfinite(signal).all()
        hits += any(statement in line for line in m.statements)
    assert hits >= 4


def test_complete_heart_block_ventricular_rate_is_the_escape_rate() -> None:
    _, m = render(4, av_block="complete", heart_rate_bpm=40.0, atrial_rate_bpm=85.0)
    assert m.rr_interval is not None and abs(m.rr_interval - 1500) < 120
    assert m.p_onset is None  # P waves are not linked to the QRS


def test_flutter_waves_are_negative_sawtooth_inferiorly() -> None:
    from ecgkt.synth.waveform import INDEPENDENT_LEAD_VECTORS, flutter_waves
    heart = flutter_waves(300.0, 0.2, np.random.default_rng(0), fs=500, n_samples=5000)
    lead_ii = INDEPENDENT_LEAD_VECTORS[1] @ heart
    assert abs(float(lead_ii.max() - lead_ii.min()) - 0.2) < 0.01
    spectrum = np.abs(np.fft.rfft(lead_ii))
    assert abs(int(spectrum[1:].argmax()) + 1 - 50) <= 1  # 300/min = 5 Hz = bin 50 of a 10 s record
