"""GE MUSE resting-ECG XML (root `<RestingECG>`).

Layout (GE MUSE XML export): `<Waveform>` blocks, usually a "Median" beat and a "Rhythm" strip,
each with `<SampleBase>` × 10^`<SampleExponent>` Hz and one `<LeadData>` per stored lead:
`<LeadID>`, `<LeadSampleCountTotal>`, `<LeadAmplitudeUnitsPerBit>` (4.88 typical),
`<LeadAmplitudeUnits>` (MICROVOLTS) and `<WaveFormData>` = base64 of little-endian int16.
MUSE usually stores 8 leads (I, II, V1–V6); III, aVR, aVL, aVF are derived (noted). One `Waveform`
or several (what dict-based parsers see as a dict vs a list) are handled alike: the Rhythm block is
used, else the longest one. `<RestingECGMeasurements>` (the cart's own intervals) is kept aside.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from ecgkt.signals.formats._base import (
    DEFAULT_MAX_BYTES,
    FormatError,
    FormatRecord,
    assemble_leads,
    decode_base64,
    int16_samples,
    parse_xml,
    positive_float,
    unit_factor,
)

__all__ = ["read_ge_muse"]

FORMAT = "GE MUSE XML"
_MEASUREMENTS = {
    "VentricularRate": "heart_rate_bpm",
    "PRInterval": "pr_ms",
    "QRSDuration": "qrs_ms",
    "QTInterval": "qt_ms",
    "QTCorrected": "qtc_ms",
    "PAxis": "p_axis_deg",
    "RAxis": "qrs_axis_deg",
    "TAxis": "t_axis_deg",
}


def _text(element: Element, tag: str) -> str | None:
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text is not None else None


def _choose_waveform(root: Element, source: str) -> Element:
    waveforms = root.findall("Waveform")
    if not waveforms:
        raise FormatError(source, f"{FORMAT}: no <Waveform> block")
    rhythm = [w for w in waveforms if (_text(w, "WaveformType") or "").lower() == "rhythm"]
    if rhythm:
        return rhythm[0]

    def length(w: Element) -> int:
        counts = [_text(lead, "LeadSampleCountTotal") or "0" for lead in w.findall("LeadData")]
        return max((int(c) for c in counts if c.isdigit()), default=0)

    return max(waveforms, key=length)


def read_ge_muse(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read the rhythm strip of a GE MUSE XML file; see the module docstring for the layout."""
    source = str(path)
    root = parse_xml(path, max_bytes)
    if root.tag != "RestingECG":
        raise FormatError(source, f"{FORMAT}: root element is <{root.tag}>, expected <RestingECG>")
    waveform = _choose_waveform(root, source)
    notes: list[str] = []
    kind = _text(waveform, "WaveformType")
    if kind and kind.lower() != "rhythm":
        notes.append(f"no Rhythm waveform: used the {kind} block")
    base = positive_float(_text(waveform, "SampleBase"), source, f"{FORMAT}: SampleBase")
    exponent_text = _text(waveform, "SampleExponent") or "0"
    try:
        exponent = int(exponent_text)
    except ValueError:
        raise FormatError(source, f"{FORMAT}: SampleExponent {exponent_text!r} is not an integer") from None
    fs = base * 10.0**exponent
    channels: list[tuple[str, np.ndarray]] = []
    for index, lead in enumerate(waveform.findall("LeadData")):
        lead_id = _text(lead, "LeadID") or f"channel {index + 1}"
        what = f"{FORMAT}: lead {lead_id}"
        count_text = _text(lead, "LeadSampleCountTotal")
        expected = int(count_text) if count_text and count_text.isdigit() else None
        sample_size = _text(lead, "LeadSampleSize") or "2"
        if sample_size != "2":
            raise FormatError(source, f"{what}: LeadSampleSize {sample_size} not supported (expected 2 bytes)")
        upb_text = _text(lead, "LeadAmplitudeUnitsPerBit")
        if upb_text is None:
            raise FormatError(source, f"{what}: no LeadAmplitudeUnitsPerBit (amplitude scale unknown)")
        per_bit = positive_float(upb_text, source, f"{what}: LeadAmplitudeUnitsPerBit")
        to_mv = unit_factor(_text(lead, "LeadAmplitudeUnits"), source, what, default="MICROVOLTS")
        data = decode_base64(_text(lead, "WaveFormData"), source, what)
        samples = int16_samples(data, source, what, expected)
        channels.append((lead_id, samples.astype(np.float64) * (per_bit * to_mv)))
    if not channels:
        raise FormatError(source, f"{FORMAT}: the waveform block has no <LeadData>")
    measurements: dict[str, float] = {}
    block = root.find("RestingECGMeasurements")
    if block is not None:
        for tag, key in _MEASUREMENTS.items():
            value = _text(block, tag)
            try:
                measurements[key] = float(value) if value is not None else float("nan")
            except ValueError:
                continue
        measurements = {k: v for k, v in measurements.items() if np.isfinite(v)}
    return assemble_leads(source, FORMAT, channels, fs, notes, measurements)
