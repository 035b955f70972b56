"""Global ECG measurements from a median beat, the way resting-ECG carts compute them.

Method (as in the GE 12SL / Philips DXL programs' published descriptions and the IEC 60601-2-25
measurement conventions): detect QRS complexes on the multi-lead band-passed energy (Pan & Tompkins
1985: 5–15 Hz band, derivative, squaring), form a median beat of the dominant beats (RR within
±20 % of the median), and find wave onsets and ends on the spatial velocity / spatial magnitude
of all 12 leads together, so one global PR, QRS and QT is measured rather than a lead's. QTc by
Bazett (1920) and Fridericia (1920). Frontal axes from net areas in I and aVF
(Hx = I, Hy = 2·aVF/√3; Einthoven/Goldberger geometry).

Failures are flagged, never guessed: fewer than 3 detected beats, no P wave (e.g. atrial
fibrillation: PR and P axis are None), or a value outside physiological limits leaves that
measurement None with a reason in `flags`.

Thresholds (fractions of the wave's peak) were fixed on development seeds 0–59 of the synthetic
generator, never on the benchmark seeds (benchmarks/measurements.py uses 1000+).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal as sps

from ecgkt.signals.leads import CANONICAL_LEADS

__all__ = ["Measurements", "measure_ecg", "measurements_line"]

_I, _AVF = CANONICAL_LEADS.index("I"), CANONICAL_LEADS.index("aVF")
# Fractions of a wave's peak spatial velocity / magnitude that mark its onset or end (dev seeds).
QRS_FRACTION = 0.15
T_END_FRACTION = 0.30
P_FRACTION = 0.15
MIN_P_MV = 0.03  # a P wave below this spatial amplitude is "not found"
P_LOCKED_MIN = 0.15  # share of the P segment's per-beat energy the median beat must keep (dev seeds)
_LIMITS_MS = {"pr_ms": (60, 400), "qrs_ms": (40, 250), "qt_ms": (200, 700)}
IRREGULAR_RR_CV = 0.10  # RR coefficient of variation above which the rhythm is called irregular


@dataclass(frozen=True)
class Measurements:
    """One record's global measurements (ms, bpm, degrees); None = not measurable (see `flags`)."""

    heart_rate_bpm: float | None
    rr_ms: float | None
    rr_cv: float | None
    rhythm_regular: bool | None
    n_beats: int
    pr_ms: float | None
    qrs_ms: float | None
    qt_ms: float | None
    qtc_bazett_ms: float | None
    qtc_fridericia_ms: float | None
    p_axis_deg: float | None
    qrs_axis_deg: float | None
    t_axis_deg: float | None
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@lru_cache(maxsize=32)
def _design(fs: float, low: float, high: float) -> NDArray[np.float64]:
    """Butterworth band-pass sections (designing costs ~3 ms; records share a handful of rates)."""
    return np.asarray(sps.butter(2, [low, min(high, 0.45 * fs)], btype="bandpass", fs=fs, output="sos"))


def _bandpass(x: NDArray[np.float64], fs: float, low: float, high: float) -> NDArray[np.float64]:
    return np.asarray(sps.sosfiltfilt(_design(float(fs), low, high), x, axis=-1))


def _r_peaks(leads: NDArray[np.float64], fs: float) -> NDArray[np.int64]:
    """QRS fiducials: peaks of the smoothed multi-lead energy of the 5–15 Hz band's derivative."""
    band = _bandpass(leads, fs, 5.0, 15.0)
    energy = (np.diff(band, axis=1) ** 2).sum(axis=0)
    width = max(1, int(0.04 * fs))
    energy = np.convolve(energy, np.ones(width) / width, mode="same")
    height = 0.25 * float(np.percentile(energy, 99.5))
    peaks, _ = sps.find_peaks(energy, height=height, distance=int(0.25 * fs))
    return peaks.astype(np.int64)


def _axis(median: NDArray[np.float64], start: int, end: int) -> float:
    area_i = float(median[_I, start : end + 1].sum())
    area_avf = float(median[_AVF, start : end + 1].sum())
    return math.degrees(math.atan2(2.0 * area_avf / math.sqrt(3.0), area_i))


def _first_below(curve: NDArray[np.float64], start: int, stop: int, level: float, hold: int = 1) -> int | None:
    """First index from `start` towards `stop` (either direction) where the curve drops below `level`
    and stays below for `hold` samples (so a notch inside a wide QRS does not end it)."""
    step = 1 if stop >= start else -1
    run = 0
    for i in range(start, stop, step):
        run = run + 1 if curve[i] < level else 0
        if run >= hold:
            return i - step * (hold - 1)
    return None


def measure_ecg(signal_mv: NDArray[np.floating], fs: float) -> Measurements:
    """Measure a 12-lead record (12, n) in mV, canonical lead order, at `fs` Hz."""
    flags: list[str] = []
    leads = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64))
    none = dict(pr_ms=None, qrs_ms=None, qt_ms=None, qtc_bazett_ms=None, qtc_fridericia_ms=None,
                p_axis_deg=None, qrs_axis_deg=None, t_axis_deg=None)
    if leads.shape[0] != len(CANONICAL_LEADS) or leads.shape[1] < 2 * fs:
        return Measurements(None, None, None, None, 0, **none, flags=["record shorter than 2 s or not 12 leads"])
    peaks = _r_peaks(leads, fs)
    if peaks.size < 3:
        return Measurements(None, None, None, None, int(peaks.size), **none,
                            flags=[f"only {peaks.size} QRS complexes detected: no measurement"])
    rr = np.diff(peaks) / fs
    rr_median = float(np.median(rr))
    rr_cv = float(np.std(rr) / np.mean(rr))
    heart_rate = 60.0 / rr_median
    regular = rr_cv <= IRREGULAR_RR_CV

    # Dominant beats: both neighbouring RR within ±20 % of the median (drops premature beats).
    filtered = _bandpass(leads, fs, 0.5, 40.0)
    pre = int(min(0.50, 0.8 * rr_median) * fs)
    post = int(min(0.70, 0.95 * rr_median) * fs)
    keep = []
    for k, p in enumerate(peaks):
        if p - pre < 0 or p + post > leads.shape[1]:
            continue
        neighbours = [rr[j] for j in (k - 1, k) if 0 <= j < rr.size]
        if all(abs(r - rr_median) <= 0.2 * rr_median for r in neighbours):
            keep.append(p)
    if len(keep) < 2:
        flags.append("fewer than 2 dominant beats: intervals not measured")
        return Measurements(heart_rate, rr_median * 1000, rr_cv, regular, int(peaks.size), **none, flags=flags)
    beats = np.stack([filtered[:, p - pre : p + post] for p in keep])
    median = np.median(beats, axis=0)  # (12, W)
    velocity = np.sqrt((np.gradient(median, axis=1) ** 2).sum(axis=0))
    centre = pre
    search = int(0.06 * fs)
    peak_v = centre - search + int(np.argmax(velocity[centre - search : centre + search]))
    v_level = QRS_FRACTION * float(velocity[peak_v])
    gap = int(0.02 * fs)
    # QRS onset: walking back from the steepest point, the first sustained drop below the level.
    hold = max(1, int(0.012 * fs))
    onset = _first_below(velocity, peak_v, max(0, peak_v - int(0.15 * fs)), v_level, hold)
    offset = _first_below(velocity, peak_v, min(len(velocity), peak_v + int(0.20 * fs)), v_level, hold)
    if onset is None or offset is None:
        flags.append("QRS onset/end not found: intervals not measured")
        return Measurements(heart_rate, rr_median * 1000, rr_cv, regular, int(peaks.size), **none, flags=flags)
    iso = median[:, max(0, onset - gap // 2) : onset + 1].mean(axis=1, keepdims=True)
    magnitude = np.sqrt(((median - iso) ** 2).sum(axis=0))
    values: dict[str, Any] = dict(none)
    values["qrs_ms"] = (offset - onset) * 1000 / fs
    values["qrs_axis_deg"] = _axis(median - iso, onset, offset)

    rr_samples = int(rr_median * fs)
    # T wave: largest spatial magnitude between the J point and 0.1 s before the next beat's
    # earliest possible P; its end on the descending limb, where the spatial velocity falls below
    # a fraction of the limb's steepest point (baseline-independent, like the tangent method).
    t_start = offset + int(0.06 * fs)
    t_stop = min(magnitude.size, onset + int(0.7 * fs), pre + rr_samples - int(0.12 * fs))
    t_end = None
    if t_stop - t_start > int(0.05 * fs):
        t_peak = t_start + int(np.argmax(magnitude[t_start:t_stop]))
        limb = velocity[t_peak:t_stop]
        if limb.size > 2:
            steepest = t_peak + int(np.argmax(limb))
            t_end = _first_below(velocity, steepest, t_stop, T_END_FRACTION * float(velocity[steepest]), hold)
    if t_end is not None:
        values["qt_ms"] = (t_end - onset) * 1000 / fs
        values["t_axis_deg"] = _axis(median - iso, offset, t_end)
    else:
        flags.append("T wave end not found before the next beat: QT not measured")

    # P wave: after the previous beat's T end (same position one RR earlier), at most 0.40 s
    # before the QRS; its spatial magnitude must exceed MIN_P_MV.
    p_from = max(0, onset - int(0.40 * fs))
    if t_end is not None:
        p_from = max(p_from, t_end - rr_samples + gap)
    p_to = onset - gap
    if p_to > p_from + 2:
        p_base = median[:, p_from : p_from + gap].mean(axis=1, keepdims=True)
        p_mag = np.sqrt(((median - p_base) ** 2).sum(axis=0))
        p_peak = p_from + int(np.argmax(p_mag[p_from:p_to]))
        p_height = float(p_mag[p_peak])
        # A P wave is time-locked to the QRS, so the median beat keeps most of each beat's energy
        # there; fibrillatory waves are not, and mostly cancel in the median.
        per_beat = beats[:, :, p_from:p_to] - beats[:, :, p_from : p_from + gap].mean(axis=2, keepdims=True)
        beat_energy = float((per_beat**2).sum(axis=(1, 2)).mean())
        locked = float((p_mag[p_from:p_to] ** 2).sum()) / beat_energy if beat_energy > 0 else 0.0
        if locked < P_LOCKED_MIN:
            flags.append(f"atrial activity not time-locked to the QRS (locked energy {locked:.2f})")
        elif p_height >= MIN_P_MV and p_peak > p_from:
            p_onset = _first_below(p_mag, p_peak, p_from - 1, P_FRACTION * p_height)
            p_end = _first_below(p_mag, p_peak, p_to + gap, P_FRACTION * p_height)
            if p_onset is not None and p_onset > p_from:
                values["pr_ms"] = (onset - p_onset) * 1000 / fs
                if p_end is not None:
                    values["p_axis_deg"] = _axis(median - p_base, p_onset, p_end)
    if values["pr_ms"] is None:
        flags.append("no P wave found before the QRS: PR and P axis not measured")

    for key, (low, high) in _LIMITS_MS.items():
        value = values[key]
        if value is not None and not low <= value <= high:
            flags.append(f"{key} {value:.0f} outside {low}–{high} ms: discarded")
            values[key] = None
    if values["qt_ms"] is not None:
        values["qtc_bazett_ms"] = values["qt_ms"] / math.sqrt(rr_median)
        values["qtc_fridericia_ms"] = values["qt_ms"] / rr_median ** (1.0 / 3.0)
    else:
        values["t_axis_deg"] = None
    return Measurements(heart_rate, rr_median * 1000, rr_cv, regular, int(peaks.size), flags=flags, **values)


def measurements_line(values: dict[str, Any] | None) -> str:
    """One line for reports: "HR 72 bpm (regular) · PR 160 ms · QRS 92 ms · QT/QTc 380/410 ms · axes P/QRS/T …"."""
    if not values:
        return "not measured"

    def ms(key: str) -> str:
        value = values.get(key)
        return "–" if value is None else f"{value:.0f}"

    rate = values.get("heart_rate_bpm")
    regular = values.get("rhythm_regular")
    parts = [
        ("HR –" if rate is None else f"HR {rate:.0f} bpm")
        + ("" if regular is None else " (regular)" if regular else " (irregular RR)"),
        f"PR {ms('pr_ms')} ms", f"QRS {ms('qrs_ms')} ms", f"QT/QTc {ms('qt_ms')}/{ms('qtc_bazett_ms')} ms (Bazett)",
        f"axes P/QRS/T {ms('p_axis_deg')}/{ms('qrs_axis_deg')}/{ms('t_axis_deg')}°",
    ]
    line = " · ".join(parts)
    flags = values.get("flags") or []
    return line + (f" — {'; '.join(flags)}" if flags else "")
