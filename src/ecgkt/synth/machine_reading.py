"""The cart's measurement and interpretation program, run on what the renderer actually drew.

Real carts (GE 12SL, Philips DXL) form a median beat, find wave onsets/ends on the spatial
magnitude of all leads, compute axes from net areas in I and aVF, and print rule-based statements.
We do the same on the noise-free median beat the renderer used and on the RR intervals it placed,
so the numbers in `machine_measurements.csv` follow the waveform (a 1st-degree AV block statement
appears because the measured PR is > 200 ms, not because a flag was set). Like MIMIC, onsets and
ends are times in ms inside the median-beat window, whose origin lies ~40 ms before P onset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_params import MachineMeasurements
from ecgkt.synth.waveform_noise import RecordDefects

FloatArray = NDArray[np.float64]

_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
_IDX = {name: i for i, name in enumerate(_LEADS)}
_TERRITORY_LEADS: dict[str, tuple[str, ...]] = {
    "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
_QS_SCAR_LEADS = ("III", "aVF", "V2", "V3", "V4")
WINDOW_LEAD_IN_MS = 40.0  # MIMIC's p_onset sits ~40 ms into the median-beat window
_NOMINAL_PR_MS = 160.0  # where the window starts relative to the QRS when there is no P wave
_EXTENT_THRESHOLD = 0.005  # a wave starts/ends where its spatial magnitude crosses 0.5 % of peak
_JITTER_MS = 2.0  # cart measurement scatter
_NOISY_HF_RMS_MV = 0.05  # first-difference RMS (muscle noise, mains) that makes a cart complain
_NOISY_DRIFT_RMS_MV = 0.25

# Statements that make a tracing "Borderline" rather than "Abnormal".
_MINOR = frozenset({
    "Sinus tachycardia", "Sinus bradycardia", "1st degree AV block", "Left axis deviation",
    "Right axis deviation", "Nonspecific T wave abnormality", "Premature atrial complexes",
    "Short QT", "Prominent U waves", "Tall T waves", "Nonspecific ST abnormality",
    "Incomplete right bundle branch block", "Left anterior fascicular block",
    "Nonspecific ST and T wave abnormality",
})
_NEUTRAL = frozenset({"Sinus rhythm", "Poor data quality"})


@dataclass(frozen=True, slots=True)
class MedianBeat:
    """The dominant beat, noise-free, with each wave group rendered separately.

    `group_vectors[name]` is the heart vector (3, W) of one group ("p", "qrs", "st", "t",
    "repol" = ST + T, "u"); `group_leads[name]` its 12-lead projection; `leads` the whole beat.
    """

    fs: int
    leads: FloatArray
    group_vectors: dict[str, FloatArray]
    group_leads: dict[str, FloatArray]
    has_p: bool
    rhythm: str = "sinus"  # what the renderer drew: sinus, atrial_fibrillation, atrial_flutter, paced
    av_block: str = "none"  # none, mobitz1, mobitz2, complete


def _extent(vectors: FloatArray) -> tuple[int, int] | None:
    magnitude = np.sqrt((vectors * vectors).sum(axis=0))
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak < 1e-4:
        return None
    above = np.flatnonzero(magnitude > _EXTENT_THRESHOLD * peak)
    return int(above[0]), int(above[-1])


def _axis_deg(vectors: FloatArray, span: tuple[int, int]) -> float:
    """Frontal axis from the net areas in I (x) and aVF (proportional to y), as carts do."""
    area = vectors[:, span[0]:span[1] + 1].sum(axis=1)
    return float(np.degrees(np.arctan2(area[1], area[0])))


def q_waves(qrs: FloatArray, fs: int) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """Per lead of a QRS (L, W): duration (ms) and depth (mV) of the initial negative deflection,
    and whether the complex is a QS (never rises above baseline). Duration/depth are 0 where the
    QRS starts positive."""
    significant = np.abs(qrs) > 0.03
    has_any = significant.any(axis=1)
    first = significant.argmax(axis=1)
    rows = np.arange(qrs.shape[0])
    starts_negative = has_any & (qrs[rows, first] < 0)
    positions = np.arange(qrs.shape[1])[None, :]
    back_up = (qrs >= 0.03) & (positions > first[:, None])
    has_r = back_up.any(axis=1)
    end = np.where(has_r, back_up.argmax(axis=1), qrs.shape[1])
    in_q = (positions >= first[:, None]) & (positions < end[:, None])
    depth = -np.where(in_q, qrs, 0.0).min(axis=1)
    duration = (end - first) * 1000.0 / fs
    return (np.where(starts_negative, duration, 0.0), np.where(starts_negative, depth, 0.0),
            starts_negative & ~has_r)


@dataclass(frozen=True, slots=True)
class _Findings:
    qrs_ms: float
    qt_ms: float
    pr_ms: float | None
    rr_ms: float


def read_machine_measurements(*, median: MedianBeat, rr_intervals_s: FloatArray,
                              beat_kinds: NDArray[np.int64], lead_noise: NDArray[np.floating],
                              defects: RecordDefects, artifact: bool,
                              rng: np.random.Generator) -> MachineMeasurements:
    """Measurements and statements the cart would print for this record."""
    fs = median.fs
    ms_per_sample = 1000.0 / fs
    p_span = _extent(median.group_vectors["p"]) if median.has_p else None
    qrs_span = _extent(median.group_vectors["qrs"])
    t_span = _extent(median.group_vectors["repol"])
    if qrs_span is None or t_span is None:
        raise ValueError("machine reading: the median beat has no QRS or T wave")
    origin = (p_span[0] if p_span else qrs_span[0] - _NOMINAL_PR_MS / ms_per_sample) \
        - WINDOW_LEAD_IN_MS / ms_per_sample

    def at(index: float) -> float:
        return float(round((index - origin) * ms_per_sample + rng.normal(0.0, _JITTER_MS)))

    p_onset = at(p_span[0]) if p_span else None
    p_end = at(p_span[1]) if p_span else None
    qrs_onset, qrs_end, t_end = at(qrs_span[0]), at(qrs_span[1]), at(t_span[1])
    rr_ms = float(np.mean(rr_intervals_s) * 1000.0) if rr_intervals_s.size else float("nan")
    findings = _Findings(
        qrs_ms=qrs_end - qrs_onset, qt_ms=t_end - qrs_onset,
        pr_ms=(qrs_onset - p_onset) if p_onset is not None else None, rr_ms=rr_ms,
    )
    p_axis = round(_axis_deg(median.group_vectors["p"], p_span)) if p_span else None
    qrs_axis = round(_axis_deg(median.group_vectors["qrs"], qrs_span))
    t_axis = round(_axis_deg(median.group_vectors["repol"], t_span))
    # The cart judges quality from high-frequency noise (first differences barely see wander) and
    # from gross baseline drift.
    segment = lead_noise[:, : 2 * fs]  # 2 s is plenty to estimate a stationary noise level
    hf_rms = float(np.sqrt((np.diff(segment, axis=1) ** 2).mean(axis=1)).max())
    drift_rms = float(np.sqrt((lead_noise * lead_noise).mean(axis=1)).max())
    poor = (artifact or defects.flat_lead is not None or hf_rms > _NOISY_HF_RMS_MV
            or drift_rms > _NOISY_DRIFT_RMS_MV)
    statements = interpret(median, findings, qrs_span, float(qrs_axis), beat_kinds, poor_quality=poor)
    return MachineMeasurements(
        rr_interval=round(rr_ms) if np.isfinite(rr_ms) else None,
        p_onset=p_onset, p_end=p_end, qrs_onset=qrs_onset, qrs_end=qrs_end, t_end=t_end,
        p_axis=float(p_axis) if p_axis is not None else None, qrs_axis=float(qrs_axis), t_axis=float(t_axis),
        statements=statements,
    )


def _rhythm_lines(f: _Findings, has_p: bool, beat_kinds: NDArray[np.int64], rhythm: str = "sinus",
                  av_block: str = "none") -> list[str]:
    rate = 60000.0 / f.rr_ms if np.isfinite(f.rr_ms) and f.rr_ms > 0 else 0.0
    if rhythm == "paced":
        return ["Electronic ventricular pacemaker"]
    if av_block == "complete":
        return ["Sinus rhythm with complete heart block"]
    if rhythm == "atrial_flutter":
        beats_regular = f.rr_ms > 0 and rate > 120
        return ["Atrial flutter with 2:1 A-V conduction" if beats_regular else "Atrial flutter with variable A-V block"]
    if av_block == "mobitz1":
        return ["Sinus rhythm with 2nd degree A-V block, Mobitz I (Wenckebach)"]
    if av_block == "mobitz2":
        return ["Sinus rhythm with 2nd degree A-V block, Mobitz II"]
    if not has_p:
        line = "Atrial fibrillation"
        if rate > 100:
            line += " with rapid ventricular response"
        elif rate < 60:
            line += " with slow ventricular response"
        lines = [line]
    else:
        lines = ["Sinus tachycardia" if rate > 100 else "Sinus bradycardia" if rate < 60 else "Sinus rhythm"]
    if np.any(beat_kinds == 2):
        lines.append("Premature ventricular complexes")
    if np.any(beat_kinds == 1):
        lines.append("Premature atrial complexes")
    if f.pr_ms is not None and f.pr_ms > 200.0:
        lines.append("1st degree AV block")
    return lines


def _conduction_line(median: MedianBeat, f: _Findings, qrs_span: tuple[int, int]) -> str | None:
    qrs = median.group_leads["qrs"]
    v1 = qrs[_IDX["V1"], qrs_span[0]:qrs_span[1] + 1]
    terminal = v1[-int(0.04 * median.fs):]
    if f.qrs_ms < 120.0:
        # rSr' in V1 with a QRS of 100-119 ms: incomplete RBBB.
        late = v1[-int(0.03 * median.fs):]
        if f.qrs_ms >= 100.0 and late.max() > 0.05 and late.max() > 0.3 * v1.max():
            return "Incomplete right bundle branch block"
        return None
    if terminal.max() > 0.1 and terminal.sum() > 0:
        return "Right bundle branch block"
    lateral = qrs[[_IDX["I"], _IDX["V6"]], qrs_span[0]:qrs_span[1] + 1]
    septal_q, _, _ = q_waves(lateral, median.fs)
    # LBBB: septum activated right-to-left, so no septal q in I/V6, and a dominant negative V1.
    if v1.sum() < 0 and np.all(lateral.sum(axis=1) > 0) and not np.any(septal_q > 0):
        return "Left bundle branch block"
    return "Nonspecific intraventricular conduction delay"


def interpret(median: MedianBeat, f: _Findings, qrs_span: tuple[int, int], qrs_axis: float,
              beat_kinds: NDArray[np.int64], *, poor_quality: bool) -> tuple[str, ...]:
    """Rule-based statements in the order a cart prints them, ending with the overall verdict."""
    fs = median.fs
    lines = _rhythm_lines(f, median.has_p, beat_kinds, median.rhythm, median.av_block)
    paced = median.rhythm == "paced"
    block = None if paced else _conduction_line(median, f, qrs_span)
    if block:
        lines.append(block)
    narrow = f.qrs_ms < 120.0
    if paced:
        pass
    elif -90.0 <= qrs_axis <= -45.0 and narrow:
        lines.append("Left anterior fascicular block")
    elif -90.0 <= qrs_axis < -30.0:
        lines.append("Left axis deviation")
    elif 110.0 <= qrs_axis <= 180.0 and narrow:
        lines.append("Left posterior fascicular block")
    elif 90.0 < qrs_axis <= 180.0:
        lines.append("Right axis deviation")
    if block == "Incomplete right bundle branch block":
        block = None  # repolarisation is still read as usual

    qrs_leads = median.group_leads["qrs"][:, qrs_span[0]:qrs_span[1] + 1]
    r_amp, s_amp = qrs_leads.max(axis=1), -qrs_leads.min(axis=1)
    # Sokolow-Lyon or Cornell voltage (the male Cornell cut-off: the cart here does not know sex).
    sokolow = s_amp[_IDX["V1"]] + max(r_amp[_IDX["V5"]], r_amp[_IDX["V6"]])
    cornell = r_amp[_IDX["aVL"]] + s_amp[_IDX["V3"]]
    lvh = block is None and not paced and (sokolow > 3.5 or cornell > 2.8)

    # ST level at J + 60 ms (J + RR/16 at fast rates), against the isoelectric PR segment (0 here).
    j_offset = int(min(0.06, f.rr_ms / 16000.0) * fs)
    st = median.leads[:, min(qrs_span[1] + j_offset, median.leads.shape[1] - 1)]
    t_wave = median.group_leads["t"]
    t_amp = t_wave[np.arange(12), np.abs(t_wave).argmax(axis=1)]

    lateral_st = min(st[_IDX["V5"]], st[_IDX["V6"]])
    strain = lvh and lateral_st < -0.05 and min(t_amp[_IDX["V5"]], t_amp[_IDX["V6"]]) < 0
    if lvh:
        lines.append("Left ventricular hypertrophy with repolarization abnormality" if strain
                     else "Left ventricular hypertrophy")

    if block is None and not paced:
        lines.extend(_ischaemia_lines(median, st, t_amp, qrs_span, skip_lateral_repol=strain))
    if float(np.abs(median.group_leads["u"]).max()) >= 0.1:
        lines.append("Prominent U waves")
    qtc = f.qt_ms / np.sqrt(f.rr_ms / 1000.0) if np.isfinite(f.rr_ms) else float("nan")
    if qtc > 470.0:
        lines.append("Prolonged QT")
    elif qtc < 340.0:
        lines.append("Short QT")
    if poor_quality:
        lines.append("Poor data quality")
    findings = [line for line in lines if line not in _NEUTRAL]
    if not findings:
        verdict = "Normal ECG"
    elif all(line in _MINOR for line in findings):
        verdict = "Borderline ECG"
    else:
        verdict = "Abnormal ECG"
    return (*lines[:17], verdict)


def _ischaemia_lines(median: MedianBeat, st: FloatArray, t_amp: FloatArray, qrs_span: tuple[int, int],
                     *, skip_lateral_repol: bool) -> list[str]:
    """Territorial ST elevation / depression, T inversion and Q waves (>= 2 contiguous leads)."""
    lines: list[str] = []
    # Pathological Q: >= 30 ms and >= 0.1 mV followed by an R, in >= 2 leads of a territory; a QS
    # complex >= 0.3 mV deep also counts in III/aVF and V2-V4 (inferior and anterior scars). V1
    # (QS is normal there) and aVL (Q normal with a vertical heart) do not count.
    q_ms, q_mv, qs = q_waves(median.group_leads["qrs"][:, qrs_span[0]:qrs_span[1] + 1], median.fs)
    pathological = ((q_ms >= 30.0) & (q_mv >= 0.1) & ~qs) | (qs & (q_mv >= 0.3) & _QS_SCAR)
    for name in _TERRITORY_NAMES[(_Q_COUNTED & pathological).sum(axis=1) >= 2]:
        lines.append(f"{name.capitalize()} infarct, age undetermined")
    repol_territories = _NO_LATERAL if skip_lateral_repol else _ALL_TERRITORIES
    elevated = _TERRITORY & (st >= _ST_ELEVATION_MV)
    n_elevated = elevated.sum(axis=1)
    if np.any(n_elevated >= 2):
        mean_elevation = np.where(n_elevated >= 2, (elevated * st).sum(axis=1) / np.maximum(n_elevated, 1), -1.0)
        lines.append(f"ST elevation, consider {_TERRITORY_NAMES[int(mean_elevation.argmax())]} injury or "
                     f"acute infarct")
    else:
        involved = _TERRITORY_NAMES[((_TERRITORY & (st <= -0.1)).sum(axis=1) >= 2) & repol_territories]
        if involved.size == 1:
            lines.append(f"ST depression, consider {involved[0]} ischemia")
        elif involved.size > 1:
            lines.append("Nonspecific ST abnormality")
    t_hits = _TERRITORY_NAMES[((_TERRITORY & _T_UPRIGHT & (t_amp <= -0.1)).sum(axis=1) >= 2) & repol_territories]
    flat = int((_T_FLAT_CHECKED & (np.abs(t_amp) < 0.1)).sum())
    if t_hits.size == 1:
        lines.append(f"T wave inversion, consider {t_hits[0]} ischemia")
    elif t_hits.size or flat >= 3:
        lines.append("Nonspecific T wave abnormality")
    if float(t_amp.max()) >= 1.0:
        lines.append("Tall T waves")
    return lines


def _lead_mask(leads: tuple[str, ...]) -> NDArray[np.bool_]:
    return np.isin(np.array(_LEADS), leads)


_TERRITORY_NAMES = np.array(tuple(_TERRITORY_LEADS))
_TERRITORY = np.stack([_lead_mask(leads) for leads in _TERRITORY_LEADS.values()])  # (3, 12)
_Q_COUNTED = _TERRITORY & ~_lead_mask(("V1", "aVL"))
_QS_SCAR = _lead_mask(_QS_SCAR_LEADS)
# T is normally upright everywhere except aVR and V1 (III alone may be negative, but two inverted
# leads of a territory are required).
_T_UPRIGHT = ~_lead_mask(("aVR", "V1"))
_T_FLAT_CHECKED = _lead_mask(("I", "II", "V4", "V5", "V6"))
_ALL_TERRITORIES = np.ones(3, dtype=bool)
# ST-elevation thresholds (Fourth Universal Definition of MI): 0.1 mV, but 0.2 mV in V2-V3 where
# healthy men commonly show J-point elevation (the cart does not know the sex; it uses the male value).
_ST_ELEVATION_MV = np.where(_lead_mask(("V2", "V3")), 0.2, 0.1)
_NO_LATERAL = _TERRITORY_NAMES != "lateral"
