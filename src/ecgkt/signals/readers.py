"""ECG input for inference: WFDB, DICOM 12-lead waveforms and NumPy files → one `EcgInput`.

Every reader ends in the same assembly step (`_assemble`), so lead selection by name, unit
conversion, validation and the input notes behave identically whatever the file format: a record
read from WFDB, DICOM or NumPy and then `prepare_windows`-ed is exactly what the model was trained
on (the store uses the same `ecgkt.signals.preprocess` path).

Every problem is an `EcgInputError` whose message starts with the file (or array) name, so a batch
run can say which of ten thousand inputs is bad and why.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ecgkt.signals.formats import FORMAT_SUFFIXES, FormatError, detect_format, read_format
from ecgkt.signals.leads import CANONICAL_LEADS, normalise_lead_name
from ecgkt.signals.preprocess import PreprocessSpec, preprocess, resampled_length
from ecgkt.signals.wfdb_fast import read_format16_record
from ecgkt.signals.windows import (
    MAX_WINDOWS,
    WINDOW_SAMPLES,
    WindowError,
    describe_plan,
    plan_windows,
    split_windows,
)

Units = Literal["auto", "mV", "uV"]
MissingLeads = Literal["error", "zero"]

# "auto" units: a record whose robust amplitude (99th percentile of |x| over finite samples) exceeds
# this is taken to be in µV. Real ECGs in mV stay well below 10; in µV a flat line would be < 50.
AUTO_MICROVOLT_THRESHOLD = 50.0
INPUT_SUFFIXES: tuple[str, ...] = (".hea", ".dcm", ".npy", ".npz", *FORMAT_SUFFIXES)

# Factor to mV for unit strings found in WFDB headers, DICOM (UCUM codes) and sidecars.
_TO_MILLIVOLT: dict[str, float] = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
_UNIT_DISPLAY: dict[str, str] = {"mv": "mV", "uv": "µV", "µv": "µV", "μv": "µV", "v": "V", "nv": "nV"}
# DICOM CID 3001 (SCP-ECG coding scheme) code values of the 12 standard leads, used when a channel's
# code meaning is not a recognisable lead name.
_SCPECG_LEADS: dict[str, str] = {
    "5.6.3-9-1": "I",
    "5.6.3-9-2": "II",
    "5.6.3-9-61": "III",
    "5.6.3-9-62": "aVR",
    "5.6.3-9-63": "aVL",
    "5.6.3-9-64": "aVF",
    **{f"5.6.3-9-{k}": f"V{k - 2}" for k in range(3, 9)},
}


# Lead-name normalisation runs three regexes per name; files reuse a handful of spellings.
_normalised_lead = lru_cache(maxsize=4096)(normalise_lead_name)


class EcgInputError(ValueError):
    """An input that cannot be used; the message names the source and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # keep picklable across worker processes
        return (type(self), (self.source, self.problem))


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare .signal_mv explicitly
class EcgInput:
    """One ECG ready for preprocessing: 12 canonical leads in mV at the file's own sampling rate.

    `notes` lists what was done or will be done to the input (unit conversion, lead reordering,
    NaN filling, resampling, windows under the default `PreprocessSpec`) for reports and JSON output.
    """

    source: str
    signal_mv: NDArray[np.float32]
    sampling_rate_hz: float
    original_leads: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.signal_mv.shape[1] / self.sampling_rate_hz


# ---- public entry points --------------------------------------------------------------------


def read_ecg(
    path: Path | str,
    *,
    missing_leads: MissingLeads = "error",
    sampling_rate_hz: float | None = None,
    lead_names: Sequence[str] | None = None,
    units: Units = "auto",
) -> EcgInput:
    """Read a WFDB record (with or without extension), a DICOM ECG, a `.npy` or a `.npz` file.

    Explicit arguments override what the file says (with a note when they differ). For `.npy` the
    sampling rate must come from the argument or a sidecar JSON; lead names default to the canonical
    order (noted). `units="auto"` uses the file's declared units, else the amplitude rule.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    overrides = _overrides(sampling_rate_hz, lead_names, units, missing_leads)
    header = _wfdb_header(path)
    if header is not None and (suffix in (".hea", ".dat") or not path.is_file()):
        raw = _read_wfdb(header, source)
    elif not path.exists():
        raise EcgInputError(source, "no such file")
    elif not path.is_file():
        raise EcgInputError(source, "not a file (folders are expanded by iter_inputs)")
    elif suffix == ".npy":
        raw = _read_npy(path, source)
    elif suffix == ".npz":
        raw = _read_npz(path, source)
    elif suffix in (".dcm", ".dicom") or _looks_like_dicom(path):
        raw = _read_dicom(path, source)
    elif (vendor := detect_format(path)) is not None:  # GE/Philips/HL7 XML, SCP-ECG, EDF (signals/formats)
        try:
            record = read_format(path, vendor)
        except FormatError as error:
            raise EcgInputError(source, error.problem) from None
        raw = _RawEcg(
            source, record.signal_mv.T, record.sampling_rate_hz, record.leads, "mV", record.format, record.notes
        )
    else:
        raise EcgInputError(
            source,
            f"unsupported file type {suffix or '(no extension)'}; expected WFDB .hea, DICOM .dcm, .npy, .npz, "
            "GE MUSE/CardioSoft, Philips or HL7 aECG .xml, SCP-ECG .scp or EDF .edf",
        )
    return _assemble(raw, overrides, missing_leads)


def _overrides(
    sampling_rate_hz: float | None, lead_names: Sequence[str] | None, units: str, missing_leads: str
) -> _Overrides:
    """Validate the caller's options once (a wrong option is a usage error, not a bad file)."""
    unit_aliases: dict[str, Units] = {"auto": "auto", "mv": "mV", "uv": "uV", "µv": "uV", "μv": "uV"}
    if units.lower() not in unit_aliases:
        raise ValueError(f"units must be 'auto', 'mV' or 'uV', got {units!r}")
    if missing_leads not in ("error", "zero"):
        raise ValueError(f"missing_leads must be 'error' or 'zero', got {missing_leads!r}")
    if isinstance(lead_names, str):
        raise ValueError("lead_names must be a sequence of names, not one string")
    names = None if lead_names is None else tuple(str(name) for name in lead_names)
    return _Overrides(sampling_rate_hz, names, unit_aliases[units.lower()])


def read_ecg_array(
    array: ArrayLike,
    sampling_rate_hz: float,
    lead_names: Sequence[str] | None,
    source: str = "array",
    units: Units = "auto",
    missing_leads: MissingLeads = "error",
) -> EcgInput:
    """An in-memory array (leads × samples or samples × leads, physical units) → `EcgInput`.

    `lead_names=None` assumes the canonical order I, II, III, aVR, aVL, aVF, V1–V6 (noted).
    """
    try:
        matrix = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise EcgInputError(source, f"signal is not a numeric array ({error})") from None
    raw = _RawEcg(source=source, signal=matrix, sampling_rate_hz=sampling_rate_hz, lead_names=None)
    overrides = _overrides(sampling_rate_hz, lead_names, units, missing_leads)
    return _assemble(raw, overrides, missing_leads)


def iter_inputs(paths: Sequence[Path | str]) -> list[Path]:
    """Expand folders (recursively: .hea, .dcm, .npy, .npz) and CSV lists (column `path`) into inputs.

    CSV entries are resolved relative to the CSV's folder (so MIMIC's `record_list.csv` works as is)
    and are not checked here: a missing entry fails when it is read, naming that file. Order is kept,
    duplicates are dropped. Raises `EcgInputError` for a missing path, an empty folder or list.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES and p.is_file())
            if not matches:
                raise EcgInputError(str(path), f"folder contains no ECG files ({', '.join(INPUT_SUFFIXES)})")
            found.extend(matches)
        elif path.suffix.lower() == ".csv":
            found.extend(_paths_from_csv(path))
        elif path.exists() or _names_wfdb_record(path):
            found.append(path)
        else:
            raise EcgInputError(str(path), "no such file or folder")
    if not found:
        raise EcgInputError("inputs", "no input files given")
    return list(dict.fromkeys(found))


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
    signal, _ = preprocess(ecg.signal_mv, ecg.sampling_rate_hz, spec)
    try:
        plan = plan_windows(signal.shape[1], window, max_windows)
    except WindowError:
        raise EcgInputError(
            ecg.source,
            f"record is {ecg.duration_s:.2f} s long, "
            f"shorter than one {window / spec.sampling_rate_hz:g} s window",
        ) from None
    return split_windows(signal, plan)


# ---- assembly shared by all formats -----------------------------------------------------------


@dataclass(frozen=True)
class _RawEcg:
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
class _Overrides:
    sampling_rate_hz: float | None
    lead_names: tuple[str, ...] | None
    units: Units


def _assemble(raw: _RawEcg, overrides: _Overrides, missing_leads: MissingLeads) -> EcgInput:
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

    channel_of, inverted = _select_leads(channel_has_finite, names, source, missing_leads, notes)
    factors = _unit_factors(signal, channel_of, raw, overrides.units, notes)
    signal_mv = _canonical_mv(signal, channel_of, inverted, factors)
    _check_length(signal_mv.shape[1], fs, source)
    notes.extend(_preparation_notes(signal_mv, fs))
    return EcgInput(
        source=source,
        signal_mv=signal_mv,
        sampling_rate_hz=fs,
        original_leads=tuple(names),
        notes=tuple(notes),
    )


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


def _sampling_rate(raw: _RawEcg, overrides: _Overrides, notes: list[str]) -> float:
    fs = overrides.sampling_rate_hz if overrides.sampling_rate_hz is not None else raw.sampling_rate_hz
    if fs is None:
        raise EcgInputError(
            raw.source, "sampling rate unknown: pass sampling_rate_hz (or a sidecar JSON for .npy)"
        )
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise EcgInputError(raw.source, f"sampling rate {fs!r} is not a number") from None
    if not math.isfinite(fs) or fs <= 0:
        raise EcgInputError(raw.source, f"sampling rate must be a positive finite number of Hz, got {fs}")
    if overrides.sampling_rate_hz is not None and raw.sampling_rate_hz not in (None, fs):
        notes.append(
            f"sampling rate {raw.sampling_rate_hz:g} Hz from the file overridden by the given {fs:g} Hz"
        )
    return fs


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
    raw: _RawEcg,
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
        factors = np.ones(n_channels)
        unknown = sorted({str(declared[c]) for c in used if _unit_key(declared[c]) not in _TO_MILLIVOLT})
        if not unknown:
            for c in used:
                factors[c] = _TO_MILLIVOLT[_unit_key(declared[c])]
            labels = sorted({_UNIT_DISPLAY.get(_unit_key(declared[c]), str(declared[c])) for c in used})
            if any(factors[c] != 1.0 for c in used):
                notes.append(f"converted {'/'.join(labels)}→mV (declared in the {raw.units_origin})")
            return factors
        notes.append(f"units {', '.join(unknown)} declared in the {raw.units_origin} not recognised")
    finite = np.abs(signal[used])[np.isfinite(signal[used])]
    amplitude = float(np.percentile(finite, 99)) if finite.size else 0.0
    if amplitude > AUTO_MICROVOLT_THRESHOLD:
        notes.append(
            "converted µV→mV (inferred: 99th percentile |amplitude| "
            f"{amplitude:.0f} > {AUTO_MICROVOLT_THRESHOLD:g})"
        )
        return np.full(n_channels, 1e-3)
    return np.ones(n_channels)


def _declared_units(
    declared: str | tuple[str | None, ...] | None, n_channels: int
) -> tuple[str | None, ...] | None:
    if isinstance(declared, str):
        return (declared,) * n_channels
    if declared is not None and len(declared) != n_channels:
        return None  # e.g. lead names overridden with a different channel count: units unknown
    return declared


def _unit_key(unit: str | None) -> str:
    return (unit or "").strip().lower()


def _check_length(n_samples: int, fs: float, source: str) -> None:
    spec = PreprocessSpec()
    if resampled_length(n_samples, fs, spec.sampling_rate_hz) < WINDOW_SAMPLES:
        need = WINDOW_SAMPLES / spec.sampling_rate_hz
        raise EcgInputError(
            source,
            f"record is {n_samples / fs:.2f} s long ({n_samples} samples at {fs:g} Hz); "
            f"at least {need:g} s is needed",
        )


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
    notes.append(
        f"{signal_mv.shape[1] / fs:.2f} s record: {describe_plan(plan_windows(n_out), spec.sampling_rate_hz)}"
    )
    if (np.nanmax(signal_mv) == np.nanmin(signal_mv)) if n_nan else (signal_mv.max() == signal_mv.min()):
        notes.append("record is flat (all samples equal)")
    return notes


# ---- format readers -------------------------------------------------------------------------


def _wfdb_header(path: Path) -> Path | None:
    """The header a path names: `rec.hea`, `rec.dat` → `rec.hea`; `rec` → `rec.hea` if it exists.

    A `.hea`/`.dat` path always names a WFDB record (even when missing, so the error says so).
    """
    if path.suffix.lower() in (".hea", ".dat"):
        return path.with_suffix(".hea")
    header = Path(f"{path}.hea")
    return header if header.is_file() else None


def _names_wfdb_record(path: Path) -> bool:
    header = _wfdb_header(path)
    return header is not None and header.is_file()


def _read_wfdb(header_path: Path, source: str) -> _RawEcg:
    """A WFDB record: the fast format-16 reader when it applies, else `wfdb` (which also words every error).

    `read_format16_record` accepts only records that wfdb reads identically (samples bit for bit,
    names, units, rate; tested on files written by `wfdb.wrsamp`), and declines every broken file,
    so errors keep coming from `_read_wfdb_with_wfdb`.
    """
    fast = read_format16_record(header_path)
    if fast is None:
        return _read_wfdb_with_wfdb(header_path, source)
    header, signal = fast
    return _RawEcg(
        source=source,
        signal=signal,
        sampling_rate_hz=header.fs,
        lead_names=tuple(header.sig_names),
        declared_units=tuple(header.units),
        units_origin="WFDB header",
    )


def _read_wfdb_with_wfdb(header_path: Path, source: str) -> _RawEcg:
    """The reference WFDB reader (any format wfdb supports); ~7-15 ms of pandas look-ups per header."""
    import wfdb  # heavy import kept local: the CLI imports this module for --help

    base = header_path.with_suffix("")
    if not header_path.exists():
        raise EcgInputError(source, f"no such file (WFDB header {header_path.name} not found)")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as error:  # wfdb raises many types for malformed headers
        raise EcgInputError(source, f"unreadable WFDB header ({error})") from None
    if not header.n_sig:
        raise EcgInputError(source, "WFDB header declares no signals")
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except FileNotFoundError as error:
        raise EcgInputError(source, f"WFDB signal file missing ({Path(str(error.filename)).name})") from None
    except Exception as error:
        raise EcgInputError(source, f"corrupt or truncated WFDB signal file ({error})") from None
    if record.p_signal is None:
        raise EcgInputError(source, "WFDB record holds no physical signal")
    signal = np.asarray(record.p_signal, dtype=np.float64).T
    if header.sig_len and signal.shape[1] != header.sig_len:
        raise EcgInputError(
            source, f"truncated WFDB signal file: {signal.shape[1]} of {header.sig_len} samples per lead"
        )
    units = tuple((u or None) for u in (record.units or [None] * signal.shape[0]))
    return _RawEcg(
        source=source,
        signal=signal,
        sampling_rate_hz=float(record.fs) if record.fs else None,
        lead_names=tuple(str(name) for name in record.sig_name),
        declared_units=units,
        units_origin="WFDB header",
    )


def _looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _read_dicom(path: Path, source: str) -> _RawEcg:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        raise EcgInputError(source, "not a DICOM file") from None
    except Exception as error:
        raise EcgInputError(source, f"unreadable DICOM file ({error})") from None
    groups = dataset.get("WaveformSequence")
    if not groups:
        raise EcgInputError(source, "DICOM file contains no waveform (no WaveformSequence); is it an image?")
    candidates = [(_dicom_channel_names(group), index, group) for index, group in enumerate(groups)]

    def preference(item: tuple[list[str], int, Any]) -> tuple[int, float]:
        names, _, group = item
        covered = len({normalise_lead_name(n) for n in names} & set(CANONICAL_LEADS))
        rate = float(group.get("SamplingFrequency") or 0) or 1.0
        return covered, float(group.get("NumberOfWaveformSamples") or 0) / rate

    names, index, group = max(candidates, key=preference)
    try:
        samples = dataset.waveform_array(index)
    except Exception as error:
        raise EcgInputError(
            source, f"corrupt DICOM waveform data in multiplex group {index} ({error})"
        ) from None
    label = str(group.get("MultiplexGroupLabel", "")).strip()
    notes: list[str] = []
    if len(groups) > 1:
        notes.append(f"used DICOM multiplex group {index}{f' {label!r}' if label else ''} of {len(groups)}")
    channels = group.get("ChannelDefinitionSequence") or []
    return _RawEcg(
        source=source,
        signal=np.asarray(samples, dtype=np.float64).T,
        sampling_rate_hz=float(group.SamplingFrequency) if group.get("SamplingFrequency") else None,
        lead_names=tuple(names),
        declared_units=tuple(_dicom_channel_unit(channel) for channel in channels) or None,
        units_origin="DICOM channel sensitivity units",
        notes=tuple(notes),
    )


def _dicom_channel_names(group: Any) -> list[str]:
    """Lead name per channel: code meaning, else SCP-ECG code value, else channel label."""
    names = []
    for position, channel in enumerate(group.get("ChannelDefinitionSequence") or []):
        source_items = channel.get("ChannelSourceSequence") or []
        code = source_items[0] if source_items else None
        meaning = str(code.get("CodeMeaning", "")) if code is not None else ""
        if meaning and normalise_lead_name(meaning) in CANONICAL_LEADS:
            names.append(meaning)
        elif code is not None and str(code.get("CodeValue", "")) in _SCPECG_LEADS:
            names.append(_SCPECG_LEADS[str(code.get("CodeValue"))])
        else:
            names.append(str(channel.get("ChannelLabel") or meaning or f"channel {position + 1}"))
    return names


def _dicom_channel_unit(channel: Any) -> str | None:
    """The channel's physical unit, or None when raw ADC values come without a sensitivity."""
    if channel.get("ChannelSensitivity") is None:
        return None
    unit_items = channel.get("ChannelSensitivityUnitsSequence") or []
    return str(unit_items[0].get("CodeValue")) if unit_items else None


def _read_npy(path: Path, source: str) -> _RawEcg:
    try:
        signal = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise EcgInputError(
            source, f"not a plain numeric .npy array (object arrays are refused: {error})"
        ) from None
    except Exception as error:
        raise EcgInputError(source, f"unreadable .npy file ({error})") from None
    sidecar = _read_sidecar(path, source)
    return _RawEcg(
        source=source,
        signal=_numeric(signal, source, "array"),
        sampling_rate_hz=_sidecar_rate(sidecar.get("sampling_rate_hz"), source),
        lead_names=_lead_list(sidecar.get("leads"), source),
        declared_units=None if sidecar.get("units") is None else str(sidecar["units"]),
        units_origin="sidecar JSON",
    )


def _sidecar_rate(value: Any, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EcgInputError(source, f"sidecar sampling_rate_hz must be a number, got {value!r}")
    return float(value)


def _read_sidecar(path: Path, source: str) -> dict[str, Any]:
    """`<name>.npy.json` or `<stem>.json` beside the array: {"sampling_rate_hz", "leads", "units"}."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file():
            try:
                content = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise EcgInputError(source, f"unreadable sidecar {candidate.name} ({error})") from None
            if not isinstance(content, dict):
                raise EcgInputError(source, f"sidecar {candidate.name} must hold a JSON object")
            return content
    return {}


def _read_npz(path: Path, source: str) -> _RawEcg:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise EcgInputError(source, f"unreadable .npz file ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise EcgInputError(source, "not an .npz archive (a single array? save it as .npy)")
    with archive:
        keys = set(archive.files)
        if "signal" not in keys:
            raise EcgInputError(source, f".npz has no 'signal' array (keys: {sorted(keys)})")
        try:
            content = {
                key: archive[key] for key in ("signal", "sampling_rate_hz", "leads", "units") if key in keys
            }
        except ValueError as error:
            raise EcgInputError(
                source, f".npz holds object arrays, refused without pickle ({error})"
            ) from None
        except Exception as error:
            raise EcgInputError(source, f"corrupt .npz member ({error})") from None
    rate = content.get("sampling_rate_hz")
    units = content.get("units")
    leads = content.get("leads")
    return _RawEcg(
        source=source,
        signal=_numeric(content["signal"], source, "'signal'"),
        sampling_rate_hz=None if rate is None else float(np.asarray(rate).reshape(-1)[0]),
        lead_names=_lead_list(None if leads is None else leads.tolist(), source),
        declared_units=None if units is None else str(units),
        units_origin=".npz 'units'",
    )


def _numeric(array: NDArray[Any], source: str, what: str) -> NDArray[np.float64]:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise EcgInputError(source, f"{what} has non-numeric dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64)


def _lead_list(value: Any, source: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Iterable)
        or isinstance(value, str)
        or not all(isinstance(v, str) for v in value)
    ):
        raise EcgInputError(source, f"lead names must be a list of strings, got {value!r}")
    return tuple(value)


def _paths_from_csv(path: Path) -> list[Path]:
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise EcgInputError(source, f"CSV list needs a 'path' column (found {reader.fieldnames})")
            entries = []
            for row_number, row in enumerate(reader, start=2):
                value = (row.get("path") or "").strip()
                if not value:
                    raise EcgInputError(source, f"row {row_number} has an empty 'path'")
                entries.append(Path(value) if Path(value).is_absolute() else path.parent / value)
    except FileNotFoundError:
        raise EcgInputError(source, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise EcgInputError(source, f"unreadable CSV list ({error})") from None
    if not entries:
        raise EcgInputError(source, "CSV list has no rows")
    return entries
