"""GE CardioSoft / MAC resting-ECG XML (root `<CardiologyXML>`, e.g. UK Biobank exports).

Layout: `<StripData>` with `<SampleRate units="Hz">`, `<Resolution units="uVperLsb">` and one
`<WaveformData lead="I">` per lead holding comma-separated integers (sample × resolution = µV).
Files that carry only `<FullDisclosure>` (interleaved long recordings) are refused with a clear
message rather than guessed at.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from ecgkt.signals.formats._base import (
    DEFAULT_MAX_BYTES,
    FormatError,
    FormatRecord,
    assemble_leads,
    parse_xml,
    positive_float,
    unit_factor,
)

__all__ = ["read_ge_cardiosoft"]

FORMAT = "GE CardioSoft XML"
_RESOLUTION_UNITS = {"uvperlsb": "uV", "uv": "uV", "mvperlsb": "mV", "mv": "mV"}


def _find(element: Element, tag: str, source: str) -> Element:
    found = element.find(tag)
    if found is None:
        raise FormatError(source, f"{FORMAT}: no <{tag}> in <{element.tag}>")
    return found


def read_ge_cardiosoft(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read the 10 s strip of a GE CardioSoft XML file; see the module docstring for the layout."""
    source = str(path)
    root = parse_xml(path, max_bytes)
    if root.tag != "CardiologyXML":
        raise FormatError(source, f"{FORMAT}: root element is <{root.tag}>, expected <CardiologyXML>")
    strip = root.find("StripData")
    if strip is None:
        if root.find("FullDisclosure") is not None:
            raise FormatError(source, f"{FORMAT}: only <FullDisclosure> data found; <StripData> is required")
        raise FormatError(source, f"{FORMAT}: no <StripData>")
    rate = _find(strip, "SampleRate", source)
    fs = positive_float(rate.text, source, f"{FORMAT}: SampleRate")
    resolution = _find(strip, "Resolution", source)
    per_lsb = positive_float(resolution.text, source, f"{FORMAT}: Resolution")
    unit_attr = (resolution.get("units") or "uVperLsb").strip().lower()
    if unit_attr not in _RESOLUTION_UNITS:
        raise FormatError(source, f"{FORMAT}: Resolution units {resolution.get('units')!r} not recognised")
    to_mv = per_lsb * unit_factor(_RESOLUTION_UNITS[unit_attr], source, FORMAT)
    channels: list[tuple[str, np.ndarray]] = []
    for index, block in enumerate(strip.findall("WaveformData")):
        lead = block.get("lead") or f"channel {index + 1}"
        tokens = [t for t in re.split(r"[,\s]+", block.text or "") if t]
        try:
            samples = np.array(tokens, dtype=np.int64)
        except ValueError:
            raise FormatError(source, f"{FORMAT}: lead {lead}: waveform holds something other than integers") from None
        if samples.size == 0:
            raise FormatError(source, f"{FORMAT}: lead {lead}: no samples")
        channels.append((lead, samples.astype(np.float64) * to_mv))
    if not channels:
        raise FormatError(source, f"{FORMAT}: <StripData> has no <WaveformData>")
    return assemble_leads(source, FORMAT, channels, fs)
