"""What every vendor-format reader shares: the result type, the error, hardened XML and base64, leads.

Each reader turns one file into a `FormatRecord`: the signal in mV as (n_samples, n_leads), the lead
names as the file spells them (plus derived limb leads), the sampling rate and notes saying what was
done. The shared assembly in `ecgkt.signals.readers` then selects the 12 leads by name, checks
length and units exactly as for WFDB, DICOM and NumPy input.

XML is parsed only through `defusedxml` with entity declarations and external references refused
(billion laughs, XXE), after checking the file size, so a hostile upload costs at most `max_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np
from numpy.typing import NDArray

from ecgkt.errors import UserError
from ecgkt.signals.leads import CANONICAL_LEADS, normalise_lead_name

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FormatError",
    "FormatRecord",
    "assemble_leads",
    "canonical_lead",
    "check_size",
    "decode_base64",
    "int16_samples",
    "local_name",
    "parse_xml",
    "positive_float",
    "unit_factor",
]

# A 10 s 12-lead record at 1000 Hz as base64 int16 is ~0.3 MB; vendor XML with median beats and
# measurements stays under a few MB. 50 MB leaves room for long Holter-like strips.
DEFAULT_MAX_BYTES = 50_000_000
_LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")


class FormatError(UserError, ValueError):
    """A vendor file that cannot be read; the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.source, self.problem))


@dataclass(frozen=True, eq=False)
class FormatRecord:
    """One ECG as read from a vendor file, before the shared 12-lead assembly.

    `signal_mv` is (n_samples, n_leads) float64 in millivolts; `leads` are canonical names where a
    label was recognised, else the file's label; `measurements` holds the device's own global
    measurements when the file carries them (e.g. MUSE `RestingECGMeasurements`), for comparison.
    """

    source: str
    format: str
    signal_mv: NDArray[np.float64]
    leads: tuple[str, ...]
    sampling_rate_hz: float
    notes: tuple[str, ...] = ()
    measurements: Mapping[str, float] = field(default_factory=dict)


def check_size(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Refuse a file larger than `max_bytes` before reading any of it; returns the size."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise FormatError(str(path), f"cannot read file ({error.strerror or error})") from None
    if size > max_bytes:
        raise FormatError(
            str(path), f"file is {size / 1e6:.0f} MB, larger than the {max_bytes / 1e6:.0f} MB limit for ECG files"
        )
    if size == 0:
        raise FormatError(str(path), "file is empty")
    return size


def parse_xml(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Element:
    """Parse an XML file with defusedxml: size-limited, no entity declarations, no external references.

    A DOCTYPE without entities is allowed (GE MUSE files declare `<!DOCTYPE RestingECG SYSTEM
    "restecg.dtd">`); the DTD is never fetched.
    """
    from xml.etree.ElementTree import ParseError

    import defusedxml
    from defusedxml import ElementTree as SafeET

    check_size(path, max_bytes)
    source = str(path)
    try:
        data = path.read_bytes()
        return SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.EntitiesForbidden:
        raise FormatError(source, "XML declares entities (refused: entity expansion / billion laughs)") from None
    except defusedxml.ExternalReferenceForbidden:
        raise FormatError(source, "XML references an external entity (refused)") from None
    except defusedxml.DTDForbidden:  # pragma: no cover - DTDs are allowed above
        raise FormatError(source, "XML has a DTD (refused)") from None
    except ParseError as error:
        raise FormatError(source, f"not well-formed XML ({error})") from None
    except OSError as error:
        raise FormatError(source, f"cannot read file ({error.strerror or error})") from None


def local_name(element: Element) -> str:
    """Tag without its `{namespace}` (Philips and HL7 files use default namespaces)."""
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def decode_base64(text: str | None, source: str, what: str) -> bytes:
    """Strict base64 (whitespace allowed): a truncated or corrupted block is an error, not noise."""
    if text is None or not text.strip():
        raise FormatError(source, f"{what}: no waveform data")
    compact = re.sub(r"\s+", "", text)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        problem = f"{what}: waveform data is not valid base64 (truncated or corrupted: {error})"
        raise FormatError(source, problem) from None


def int16_samples(data: bytes, source: str, what: str, expected: int | None = None) -> NDArray[np.int16]:
    """Little-endian int16 samples; checks an odd byte count and the declared sample count."""
    if len(data) % 2:
        raise FormatError(source, f"{what}: {len(data)} bytes is not a whole number of 16-bit samples (truncated?)")
    samples = np.frombuffer(data, dtype="<i2")
    if expected is not None and samples.size != expected:
        raise FormatError(
            source, f"{what}: {samples.size} samples decoded but the file declares {expected} (truncated?)"
        )
    return samples


def canonical_lead(label: str) -> str:
    """Vendor lead label -> canonical name where recognised ("ECG I", "Lead V1", "MDC_ECG_LEAD_AVR")."""
    text = re.sub(r"^\s*(ECG|EKG)[\s_-]*", "", label.strip(), flags=re.IGNORECASE)
    return normalise_lead_name(text or label)


def assemble_leads(
    source: str,
    format_name: str,
    channels: Sequence[tuple[str, NDArray[np.float64]]],
    sampling_rate_hz: float,
    notes: Sequence[str] = (),
    measurements: Mapping[str, float] | None = None,
) -> FormatRecord:
    """Stack per-lead arrays (already in mV) into a `FormatRecord`, deriving missing limb leads.

    Leads of unequal length are cut to the shortest (noted): vendors append a few samples of
    calibration to some leads. When I and II are present and any of III, aVR, aVL, aVF is missing
    (GE MUSE typically stores 8 leads), the missing ones are computed from Einthoven's law
    (III = II − I; Einthoven 1913) and Goldberger's augmented leads (aVR = −(I + II)/2,
    aVL = I − II/2, aVF = II − I/2; Goldberger 1942), and a note says so.
    """
    notes = list(notes)
    if not channels:
        raise FormatError(source, f"{format_name}: no leads found")
    if not np.isfinite(sampling_rate_hz) or sampling_rate_hz <= 0:
        raise FormatError(source, f"{format_name}: sampling rate {sampling_rate_hz!r} is not a positive number")
    lengths = {len(values) for _, values in channels}
    n = min(lengths)
    if n == 0:
        raise FormatError(source, f"{format_name}: a lead has no samples")
    if len(lengths) > 1:
        notes.append(f"leads have different lengths {sorted(lengths)}: cut to the shortest ({n} samples)")
    names = [canonical_lead(label) for label, _ in channels]
    arrays = [np.asarray(values[:n], dtype=np.float64) for _, values in channels]
    arrays = _strip_calibration_tail(arrays, sampling_rate_hz, notes)
    by_name = dict(zip(names, arrays, strict=True))
    missing = [lead for lead in _LIMB_DERIVED if lead not in by_name]
    if missing and "I" in by_name and "II" in by_name:
        lead_i, lead_ii = by_name["I"], by_name["II"]
        derived = {
            "III": lead_ii - lead_i,
            "aVR": -(lead_i + lead_ii) / 2.0,
            "aVL": lead_i - lead_ii / 2.0,
            "aVF": lead_ii - lead_i / 2.0,
        }
        for lead in missing:
            names.append(lead)
            arrays.append(derived[lead])
        notes.append(
            f"{len(channels)} leads stored; {', '.join(missing)} derived from I and II "
            "(Einthoven's law and Goldberger's equations)"
        )
    signal = np.stack(arrays, axis=1)
    return FormatRecord(
        source=source,
        format=format_name,
        signal_mv=signal,
        leads=tuple(names),
        sampling_rate_hz=float(sampling_rate_hz),
        notes=tuple(notes),
        measurements=dict(measurements or {}),
    )


def _strip_calibration_tail(
    arrays: list[NDArray[np.float64]], fs: float, notes: list[str]
) -> list[NDArray[np.float64]]:
    """Cut a calibration pulse appended after the record (Philips appends 0.4 s: 0, 1 mV, 0 on every lead).

    The tail is recognised as a run of at least 0.1 s at the end in which all stored leads carry
    the same value at every sample and that value is not always zero; no real multi-lead ECG does.
    """
    if len(arrays) < 2:
        return arrays
    stacked = np.stack(arrays)
    same = stacked.max(axis=0) == stacked.min(axis=0)
    if not same[-1]:
        return arrays
    differing = np.flatnonzero(~same)
    start = int(differing[-1]) + 1 if differing.size else 0
    tail = stacked[0, start:]
    if start == 0 or (len(tail)) < 0.1 * fs or not np.any(tail != 0):
        return arrays
    notes.append(f"removed a {len(tail) / fs:.2f} s calibration signal appended after the record")
    return [a[:start] for a in arrays]


def twelve_lead_names() -> tuple[str, ...]:
    """The canonical order, re-exported so writers need not import `signals.leads` directly."""
    return CANONICAL_LEADS


# Factor to mV for the unit spellings vendors use in their XML.
UNIT_TO_MV: dict[str, float] = {
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolts": 1e-3, "microvolt": 1e-3,
    "mv": 1.0, "millivolts": 1.0, "millivolt": 1.0, "v": 1e3, "volts": 1e3, "nv": 1e-6,
}


def unit_factor(unit: str | None, source: str, what: str, default: str | None = None) -> float:
    """mV per unit for a vendor unit string; unknown units are an error (never guessed)."""
    key = (unit or default or "").strip().lower()
    if key not in UNIT_TO_MV:
        raise FormatError(source, f"{what}: amplitude unit {unit!r} not recognised (expected µV or mV)")
    return UNIT_TO_MV[key]


def positive_float(text: str | None, source: str, what: str) -> float:
    """Parse a required positive number from XML text or an attribute."""
    try:
        value = float((text or "").strip())
    except ValueError:
        raise FormatError(source, f"{what} {text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise FormatError(source, f"{what} must be positive, got {text!r}")
    return value
