"""HL7 v3 annotated ECG (aECG, the FDA submission format; root `<AnnotatedECG xmlns="urn:hl7-org:v3">`).

Layout (HL7 aECG Implementation Guide): `component/series/component/sequenceSet/component/sequence`
elements; the one coded `TIME_ABSOLUTE` (or `TIME_RELATIVE`) holds a `GLIST_TS`/`GLIST_PQ` value whose
`<increment value="0.002" unit="s"/>` is the sampling interval; each lead sequence is coded
`MDC_ECG_LEAD_<name>` and holds an `SLIST_PQ`: physical = `origin` + `scale` × each integer of
`<digits>` (units on origin and scale, usually uV). Representative beats live in `derivedSeries`
and are ignored; the first rhythm `sequenceSet` with leads is read.
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
    local_name,
    parse_xml,
    positive_float,
    unit_factor,
)

__all__ = ["read_hl7_aecg"]

FORMAT = "HL7 aECG"
_NS = "{urn:hl7-org:v3}"
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _child(element: Element, name: str) -> Element | None:
    for child in element:
        if local_name(child) == name:
            return child
    return None


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if local_name(child) == name]


def _sequence_sets(root: Element) -> list[Element]:
    sets: list[Element] = []
    for component in _children(root, "component"):
        series = _child(component, "series")
        if series is None:
            continue
        for series_component in _children(series, "component"):
            sequence_set = _child(series_component, "sequenceSet")
            if sequence_set is not None:
                sets.append(sequence_set)
    return sets


def _interval_s(value: Element, source: str) -> float:
    increment = _child(value, "increment")
    if increment is None:
        raise FormatError(source, f"{FORMAT}: time sequence has no <increment> (sampling interval unknown)")
    step = positive_float(increment.get("value"), source, f"{FORMAT}: time increment")
    unit = (increment.get("unit") or "s").strip()
    if unit not in _SECONDS:
        raise FormatError(source, f"{FORMAT}: time increment unit {unit!r} not recognised (expected s or ms)")
    return step * _SECONDS[unit]


def _lead_mv(value: Element, source: str, lead: str) -> np.ndarray:
    what = f"{FORMAT}: lead {lead}"
    scale = _child(value, "scale")
    digits = _child(value, "digits")
    if scale is None or digits is None or digits.text is None:
        raise FormatError(source, f"{what}: SLIST_PQ needs <scale> and <digits>")
    scale_mv = positive_float(scale.get("value"), source, f"{what}: scale") * unit_factor(
        scale.get("unit"), source, what
    )
    origin = _child(value, "origin")
    origin_mv = 0.0
    if origin is not None and origin.get("value") is not None:
        try:
            origin_mv = float(origin.get("value") or "0") * unit_factor(origin.get("unit"), source, what)
        except ValueError:
            raise FormatError(source, f"{what}: origin {origin.get('value')!r} is not a number") from None
    try:
        samples = np.array(digits.text.split(), dtype=np.int64)
    except ValueError:
        raise FormatError(source, f"{what}: <digits> holds something other than integers") from None
    return origin_mv + scale_mv * samples.astype(np.float64)


def read_hl7_aecg(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read the rhythm leads of an HL7 aECG file; see the module docstring for the layout."""
    source = str(path)
    root = parse_xml(path, max_bytes)
    if local_name(root) != "AnnotatedECG":
        raise FormatError(source, f"{FORMAT}: root element is <{local_name(root)}>, expected <AnnotatedECG>")
    for sequence_set in _sequence_sets(root):
        interval: float | None = None
        channels: list[tuple[str, np.ndarray]] = []
        for component in _children(sequence_set, "component"):
            sequence = _child(component, "sequence")
            if sequence is None:
                continue
            code = _child(sequence, "code")
            value = _child(sequence, "value")
            if code is None or value is None:
                continue
            code_value = code.get("code") or ""
            if code_value.startswith("TIME_"):
                interval = _interval_s(value, source)
            elif code_value.startswith("MDC_ECG_LEAD_"):
                channels.append((code_value, _lead_mv(value, source, code_value.removeprefix("MDC_ECG_LEAD_"))))
        if channels:
            if interval is None:
                raise FormatError(source, f"{FORMAT}: sequence set has leads but no TIME sequence")
            return assemble_leads(source, FORMAT, channels, round(1.0 / interval, 6))
    raise FormatError(source, f"{FORMAT}: no rhythm series with MDC_ECG_LEAD_* sequences")
