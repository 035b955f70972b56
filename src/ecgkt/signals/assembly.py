"""The shared assembly step: what a format reader found → one validated `EcgInput`.

**Entry point for a new format.** A reader (WFDB, DICOM, NumPy, JSON here; vendor formats under
`ecgkt.signals.formats`) does only format work and returns a `RawEcg`: the signal (channels × samples
or samples × channels, physical units), lead names, declared units, sampling rate and notes. Then
`assemble(raw, overrides)` does everything else, identically for every format:

- sampling rate: the caller's override, else the file's; refused outside the plausible range
  (`limits.MIN/MAX_SAMPLING_RATE_HZ`) and for records shorter than one window or longer than
  `limits.MAX_RECORD_SECONDS` — all checked before anything is resampled or allocated;
- orientation, lead selection **by name** (aliases, Cabrera -aVR, missing-lead policy);
- units: explicit option > declared units (`units.unit_to_mv`) > amplitude rule;
- notes: conversions, reordering, NaN filling, clipping, resampling, windows, and per-lead
  quality (flat, saturated: `quality.lead_quality`, the builder's own checks).

Register the reader with `ecgkt.signals.registry.register_format` to make `read_ecg` dispatch to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.leads import CANONICAL_LEADS, normalise_lead_name
from ecgkt.signals.limits import (
    MAX_RECORD_SECONDS,
    MAX_SAMPLES_PER_LEAD,
    MAX_SAMPLING_RATE_HZ,
    MIN_SAMPLING_RATE_HZ,
)
from ecgkt.signals.preprocess import PreprocessSpec, preprocess, resampled_length
from ecgkt.signals.quality import lead_quality
from ecgkt.signals.units import Units, unit_display, unit_to_mv, units_option
from ecgkt.signals.windows import (
    MAX_WINDOWS,
    WINDOW_SAMPLES,
    WindowError,
    describe_plan,
    plan_windows,
    split_windows,
)

__all__ = [
    "AUTO_MICROVOLT_THRESHOLD",
    "EcgInput",
    "MissingLeads",
    "Overrides",
    "RawEcg",
    "assemble",
    "check_sampling_rate",
    "derivable_leads",
    "make_overrides",
    "prepare_windows",
]

MissingLeads = Literal["error", "zero"]

# "auto" units: a record whose robust amplitude (99th percentile of |x| over finite samples) exceeds
# this is taken to be in µV. Real ECGs in mV stay well below 10; in µV a flat line would be < 50.
AUTO_MICROVOLT_THRESHOLD = 50.0

# Lead-name normalisation runs three regexes per name; files reuse a handful of spellings.
_normalised_lead = lru_cache(maxsize=4096)(normalise_lead_name)


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare .signal_mv explicitly
class EcgInput:
    """One ECG ready for preprocessing: 12 canonical leads in mV at the file's own sampling rate.

    `notes` lists what was done or will be done to the input (unit conversion, lead reordering,
    NaN filling, resampling, windows under the default `PreprocessSpec`, flat or saturated leads)
    for reports and JSON output.
    """

    source: str
    signal_mv: NDArray[np.float32]
    sampling_rate_hz: float
    original_leads: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.signal_mv.shape[1] / self.sampling_rate_hz


@dataclass(frozen=True)
class RawEcg:
    """What a format reader found, before lead selection and units: signal (channels, n) or 2-D."""

    source: str
    signal: NDArray[np.float64]
    sampling_rate_hz: float | None
    lead_names: tuple[str, ...] | None
    # Declared units: one string for all channels, one per channel (None = unknown), or None.
    declared_units: str | tuple[str | None, ...] | None = None
    units_origin: str = "file"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Overrides:
    """The caller's options (CLI flags, form fields, JSON keys), validated once by `make_overrides`."""

    sampling_rate_hz: float | None = None
    lead_names: tuple[str, ...] | None = None
    units: Units = "auto"
    missing_leads: MissingLeads = "error"


def make_overrides(
    sampling_rate_hz: float | None = None,
    lead_names: Sequence[str] | None = None,
    units: str = "auto",
    missing_leads: str = "error",
) -> Overrides:
    """Validate the caller's options once (a wrong option is a usage error, not a bad file: ValueError)."""
    unit = units_option(units)
    if unit is None:
        raise ValueError(f"units must be 'auto', 'mV' or 'uV', got {units!r}")
    if missing_leads not in ("error", "zero"):
        raise ValueError(f"missing_leads must be 'error' or 'zero', got {missing_leads!r}")
    if isinstance(lead_names, str):
        raise ValueError("lead_names must be a sequence of names, not one string")
    names = None if lead_names is None else tuple(str(name) for name in lead_names)
    return Overrides(sampling_rate_hz, names, unit, "zero" if missing_leads == "zero" else "error")


def assemble(raw: RawEcg, overrides: Overrides = Overrides()) -> EcgInput:
    """The one assembly step every reader ends in (see the module docstring)."""
    source = raw.source
    notes = list(raw.notes)
    fs = _sampling_rate(raw, overrides, notes)
    names = overrides.lead_names if overrides.lead_names is not None else raw.lead_names
    signal = _orient(raw.signal, len(names) if names is not None else len(CANONICAL_LEADS), source)
    if names is None:
        names = CANONICAL_LEADS
        notes.append("lead names not given: assumed the canonical order " + ", ".join(CANONICAL_LEADS))
    elif overrides.lead_names is not None and raw.lead_names is not None and raw.lead_names != names:
        notes.append(f"lead names from the file {list(raw.lead_names)} replaced by the given names")
    if signal.shape[1] == 0:
        raise EcgInputError(source, "record has no samples")
    channel_has_finite: NDArray[np.bool_] = np.asarray(np.isfinite(signal).any(axis=1))
    if not channel_has_finite.any():
        raise EcgInputError(source, "record contains no finite samples (all NaN)")
    check_length(signal.shape[1], fs, source)

    channel_of, inverted = _select_leads(channel_has_finite, names, source, overrides.missing_leads, notes)
    factors = _unit_factors(signal, channel_of, raw, overrides.units, notes)
    signal_mv = _canonical_mv(signal, channel_of, inverted, factors)
    _derive_limb_leads(signal_mv, derivable_leads(channel_of))
    notes.extend(_preparation_notes(signal_mv, fs))
    notes.extend(_quality_notes(signal_mv, channel_of))
    return EcgInput(
        source=source,
        signal_mv=signal_mv,
        sampling_rate_hz=fs,
        original_leads=tuple(names),
        notes=tuple(notes),
    )


def prepare_windows(
    ecg: EcgInput,
    spec: PreprocessSpec = PreprocessSpec(),
    window: int = WINDOW_SAMPLES,
    *,
    max_windows: int | None = MAX_WINDOWS,
) -> NDArray[np.float32]:
    """The model's input for one ECG: preprocess (fill NaNs, resample, clip), then cut windows.

    Returns (W, 12, window) float32: a 10 s record gives 4 windows, 15 s gives 6, 6 s gives 2 (the
    last 1 s unused); more than `max_windows` windows are sampled evenly over the record.
    """
    check_sampling_rate(ecg.sampling_rate_hz, ecg.source)
    _check_duration(ecg.signal_mv.shape[1], ecg.sampling_rate_hz, ecg.source)
    signal, _ = preprocess(ecg.signal_mv, ecg.sampling_rate_hz, spec)
    try:
        plan = plan_windows(signal.shape[1], window, max_windows)
    except WindowError:
        raise EcgInputError(
            ecg.source,
            f"record is {ecg.duration_s:.2f} s long, shorter than one {window / spec.sampling_rate_hz:g} s window",
        ) from None
    return split_windows(signal, plan)


# ---- sampling rate and length: bounded before anything is allocated ----------------------------


def check_sampling_rate(value: Any, source: str) -> float:
    """A sampling rate as a float in the plausible range, or `EcgInputError` saying why not."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise EcgInputError(source, f"sampling rate {str(value)[:40]!r} is not a number")
    fs = float(value)
    if not math.isfinite(fs) or fs <= 0:
        raise EcgInputError(source, f"sampling rate must be a positive finite number of Hz, got {fs:g}")
    if not MIN_SAMPLING_RATE_HZ <= fs <= MAX_SAMPLING_RATE_HZ:
        raise EcgInputError(
            source,
            f"sampling rate {fs:g} Hz is outside the plausible range "
            f"{MIN_SAMPLING_RATE_HZ:g}-{MAX_SAMPLING_RATE_HZ:g} Hz (a unit mistake? Hz, not kHz or seconds)",
        )
    return fs


def _sampling_rate(raw: RawEcg, overrides: Overrides, notes: list[str]) -> float:
    fs = overrides.sampling_rate_hz if overrides.sampling_rate_hz is not None else raw.sampling_rate_hz
    if fs is None:
        raise EcgInputError(raw.source, "sampling rate unknown: pass sampling_rate_hz (or a sidecar JSON for .npy)")
    fs = check_sampling_rate(fs, raw.source)
    if overrides.sampling_rate_hz is not None and raw.sampling_rate_hz not in (None, fs):
        notes.append(f"sampling rate {raw.sampling_rate_hz:g} Hz from the file overridden by the given {fs:g} Hz")
    return fs


def _check_duration(n_samples: int, fs: float, source: str) -> None:
    """Bounds in floating point, before any resampling: at least one window, at most the record cap."""
    spec = PreprocessSpec()
    seconds = n_samples / fs
    need = WINDOW_SAMPLES / spec.sampling_rate_hz
    if seconds < need:
        raise EcgInputError(
            source,
            f"record is {seconds:.2f} s long ({n_samples} samples at {fs:g} Hz); at least {need:g} s is needed",
        )
    if seconds > MAX_RECORD_SECONDS or n_samples > MAX_SAMPLES_PER_LEAD:
        raise EcgInputError(
            source,
            f"record is {seconds:.0f} s long ({n_samples} samples per lead); at most "
            f"{MAX_RECORD_SECONDS:g} s and {MAX_SAMPLES_PER_LEAD} samples are accepted (cut it first)",
        )


def check_length(n_samples: int, fs: float, source: str) -> None:
    """Duration bounds, then the exact resampled length (the ratio `resample` uses) >= one window."""
    _check_duration(n_samples, fs, source)
    spec = PreprocessSpec()
    if resampled_length(n_samples, fs, spec.sampling_rate_hz) < WINDOW_SAMPLES:
        need = WINDOW_SAMPLES / spec.sampling_rate_hz
        raise EcgInputError(
            source,
            f"record is {n_samples / fs:.2f} s long ({n_samples} samples at {fs:g} Hz); at least {need:g} s is needed",
        )


# ---- leads and units ----------------------------------------------------------------------------


def _canonical_mv(
    signal: NDArray[np.float64],
    channel_of: Sequence[int | None],
    inverted: set[int],
    factors: NDArray[np.float64],
) -> NDArray[np.float32]:
    """(12, n) float32 in canonical order: sign × unit factor × channel, computed in float64; zeros
    for a missing lead. One gather and one multiply instead of a Python loop over leads."""
    present = [lead for lead, channel in enumerate(channel_of) if channel is not None]
    channels = [channel for channel in channel_of if channel is not None]
    signs = [-1.0 if lead in inverted else 1.0 for lead in present]
    scale = np.array([sign * factors[c] for sign, c in zip(signs, channels, strict=True)])
    out = np.zeros((len(CANONICAL_LEADS), signal.shape[1]), dtype=np.float32)
    if len(present) == len(CANONICAL_LEADS):
        np.multiply(signal[channels], scale[:, None], out=out, casting="same_kind")
    else:
        out[present] = signal[channels] * scale[:, None]
    return out


# The limb leads that follow from I and II: III = II - I (Einthoven); aVR = -(I + II)/2,
# aVL = I - II/2, aVF = II - I/2 (Goldberger's augmented leads). Vendor formats that store 8
# leads (GE MUSE, SCP-ECG: I, II, V1-V6) rely on this; the derivation is exact for an ideal recorder.
_LIMB_FROM_I_II: dict[str, tuple[float, float]] = {
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def derivable_leads(channel_of: Sequence[int | None]) -> list[str]:
    """Missing limb leads that can be computed because I and II are present."""
    index = {lead: k for k, lead in enumerate(CANONICAL_LEADS)}
    if channel_of[index["I"]] is None or channel_of[index["II"]] is None:
        return []
    return [lead for lead in _LIMB_FROM_I_II if channel_of[index[lead]] is None]


def _derive_limb_leads(signal_mv: NDArray[np.float32], leads: Sequence[str]) -> None:
    """Fill derived limb leads in place (canonical order, mV)."""
    lead_i = signal_mv[CANONICAL_LEADS.index("I")].astype(np.float64)
    lead_ii = signal_mv[CANONICAL_LEADS.index("II")].astype(np.float64)
    for lead in leads:
        a, b = _LIMB_FROM_I_II[lead]
        signal_mv[CANONICAL_LEADS.index(lead)] = a * lead_i + b * lead_ii


def _orient(signal: NDArray[np.float64], n_leads: int, source: str) -> NDArray[np.float64]:
    """Accept (leads, n) or (n, leads); anything else is a wrong number of leads."""
    if signal.ndim != 2:
        raise EcgInputError(source, f"expected a 2-D signal (leads × samples), got shape {signal.shape}")
    if signal.shape[0] == n_leads:
        return signal
    if signal.shape[1] == n_leads:
        return np.ascontiguousarray(signal.T)
    raise EcgInputError(
        source,
        f"wrong number of leads: signal of shape {signal.shape} does not have {n_leads} leads on either axis",
    )


def _select_leads(
    channel_has_finite: NDArray[np.bool_],
    names: Sequence[str],
    source: str,
    missing_leads: MissingLeads,
    notes: list[str],
) -> tuple[list[int | None], set[int]]:
    """Channel index for each canonical lead (None = zero-filled), by name, never by position.

    A lead with no finite sample counts as missing. Cabrera "-aVR" is used (negated) when aVR is absent.
    """
    normalised = [_normalised_lead(name) for name in names]
    duplicates = sorted({n for n in normalised if n in CANONICAL_LEADS and normalised.count(n) > 1})
    if duplicates:
        raise EcgInputError(source, f"duplicate lead(s) {', '.join(duplicates)} in {list(names)}")
    channel_of: list[int | None] = []
    inverted: set[int] = set()
    empty: list[str] = []
    for lead_index, lead in enumerate(CANONICAL_LEADS):
        channel: int | None = normalised.index(lead) if lead in normalised else None
        if channel is None and lead == "aVR" and "-aVR" in normalised:
            channel = normalised.index("-aVR")
            inverted.add(lead_index)
            notes.append("aVR taken as the negated -aVR lead")
        if channel is not None and not channel_has_finite[channel]:
            empty.append(lead)
            channel = None
        channel_of.append(channel)
    missing = [lead for lead, channel in zip(CANONICAL_LEADS, channel_of, strict=True) if channel is None]
    derived = derivable_leads(channel_of)
    if derived:
        notes.append(f"derived lead(s) {', '.join(derived)} from I and II (Einthoven's and Goldberger's equations)")
        missing = [lead for lead in missing if lead not in derived]
    if missing and missing_leads != "zero":
        absent = [lead for lead in missing if lead not in empty]
        parts = []
        if absent:
            parts.append(f"missing lead(s) {', '.join(absent)} (found {list(names)})")
        if empty:
            parts.append(f"lead(s) {', '.join(empty)} contain no finite samples")
        raise EcgInputError(source, "; ".join(parts) + "; use missing_leads='zero' to fill them with zeros")
    if missing:
        notes.append(f"missing lead(s) {', '.join(missing)} filled with zeros")
    used = {c for c in channel_of if c is not None}
    extra = [name for index, name in enumerate(names) if index not in used]
    if extra:
        notes.append(f"ignored non-standard channel(s) {', '.join(extra)}")
    in_canonical_order = [c for c in channel_of if c is not None]
    if in_canonical_order != sorted(in_canonical_order):
        notes.append("leads reordered by name into I, II, III, aVR, aVL, aVF, V1–V6")
    return channel_of, inverted


def _unit_factors(
    signal: NDArray[np.float64],
    channel_of: Sequence[int | None],
    raw: RawEcg,
    units: Units,
    notes: list[str],
) -> NDArray[np.float64]:
    """Per-channel factor to mV: explicit units > declared units > amplitude rule."""
    n_channels = signal.shape[0]
    if units == "mV":
        return np.ones(n_channels)
    if units == "uV":
        notes.append("converted µV→mV (units given)")
        return np.full(n_channels, 1e-3)
    used = [c for c in channel_of if c is not None]
    declared = _declared_units(raw.declared_units, n_channels)
    if declared is not None and all(declared[c] is not None for c in used):
        known = {c: unit_to_mv(declared[c]) for c in used}
        unknown = sorted({str(declared[c]) for c in used if known[c] is None})
        if not unknown:
            factors = np.ones(n_channels)
            for c in used:
                factors[c] = known[c] or 1.0
            labels = sorted({unit_display(declared[c]) for c in used})
            if any(factors[c] != 1.0 for c in used):
                notes.append(f"converted {'/'.join(labels)}→mV (declared in the {raw.units_origin})")
            return factors
        notes.append(f"units {', '.join(unknown)} declared in the {raw.units_origin} not recognised")
    finite = np.abs(signal[used])[np.isfinite(signal[used])]
    amplitude = float(np.percentile(finite, 99)) if finite.size else 0.0
    if amplitude > AUTO_MICROVOLT_THRESHOLD:
        notes.append(
            f"converted µV→mV (inferred: 99th percentile |amplitude| {amplitude:.0f} > {AUTO_MICROVOLT_THRESHOLD:g})"
        )
        return np.full(n_channels, 1e-3)
    return np.ones(n_channels)


def _declared_units(declared: str | tuple[str | None, ...] | None, n_channels: int) -> tuple[str | None, ...] | None:
    if isinstance(declared, str):
        return (declared,) * n_channels
    if declared is not None and len(declared) != n_channels:
        return None  # e.g. lead names overridden with a different channel count: units unknown
    return declared


# ---- notes --------------------------------------------------------------------------------------


def _preparation_notes(signal_mv: NDArray[np.float32], fs: float) -> list[str]:
    """What `prepare_windows` with the default spec will do, stated once here for reports."""
    spec = PreprocessSpec()
    notes: list[str] = []
    n_nan = signal_mv.size - int(np.count_nonzero(np.isfinite(signal_mv)))
    if n_nan:
        notes.append(f"filled {n_nan} NaN samples by linear interpolation")
    # All finite (the usual case): nan_to_num would be the identity, so skip its copies.
    finite_values = np.nan_to_num(signal_mv) if n_nan else signal_mv
    n_clipped = int(np.count_nonzero(np.abs(finite_values) > spec.clip_mv))
    if n_clipped:
        share = 100 * n_clipped / signal_mv.size
        notes.append(f"{n_clipped} samples ({share:.1f} %) beyond ±{spec.clip_mv:g} mV are clipped")
    if fs != spec.sampling_rate_hz:
        notes.append(f"resampled {fs:g}→{spec.sampling_rate_hz} Hz")
    n_out = resampled_length(signal_mv.shape[1], fs, spec.sampling_rate_hz)
    notes.append(f"{signal_mv.shape[1] / fs:.2f} s record: {describe_plan(plan_windows(n_out), spec.sampling_rate_hz)}")
    if (np.nanmax(signal_mv) == np.nanmin(signal_mv)) if n_nan else (signal_mv.max() == signal_mv.min()):
        notes.append("record is flat (all samples equal)")
    return notes


def _quality_notes(signal_mv: NDArray[np.float32], channel_of: Sequence[int | None]) -> list[str]:
    """Per-lead sanity of the leads the file holds (zero-filled missing leads are noted elsewhere)."""
    present = [lead for lead, channel in enumerate(channel_of) if channel is not None]
    quality = lead_quality(signal_mv[present])
    notes = []
    if quality.flat and not quality.all_flat:
        leads = ", ".join(CANONICAL_LEADS[present[i]] for i in quality.flat)
        notes.append(f"flat lead(s) {leads}: no signal (peak-to-peak below 1 nV); predictions may be unreliable")
    if quality.saturated:
        leads = ", ".join(CANONICAL_LEADS[present[i]] for i in quality.saturated)
        notes.append(f"saturated lead(s) {leads}: clipped at the recorder's limit; predictions may be unreliable")
    return notes
