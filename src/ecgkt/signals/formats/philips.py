"""Philips PageWriter / TraceMaster "Sierra ECG" XML (root `<restingecgdata>`, versions 1.03–1.04.01).

Layout: `dataacquisition/signalcharacteristics/samplingrate` (Hz) and `resolution` (µV per LSB);
`waveforms/parsedwaveforms` with attributes `dataencoding="Base64"`, `compression` (or
`compressmethod`) = `XLI` or `Uncompressed`, `durationperchannel` (ms), `leadlabels` and
`numberofleads`. Uncompressed data is int16 little-endian, lead after lead. XLI (LZW + second
difference coding) is decoded by `sierraecg` (MIT; the reference decoder of the format's public
documentation), called on the bytes we extracted with our hardened parser.

In XLI files leads III, aVR, aVL and aVF are stored as residuals against the values predicted from
I and II (III = II − I − r, aVR = −r − ⌊(I + II)/2⌋, aVL = ⌊(I − III)/2⌋ − r, aVF = ⌊(II + III)/2⌋ − r;
sierra-ecg-tools documentation). Rather than assume, the reader checks Einthoven's law on the
stored values: if II − I − III ≈ 0 the leads are whole, else the residual reconstruction is applied
(noted either way).
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np
from numpy.typing import NDArray

from ecgkt.signals.formats._base import (
    DEFAULT_MAX_BYTES,
    FormatError,
    FormatRecord,
    assemble_leads,
    canonical_lead,
    decode_base64,
    int16_samples,
    local_name,
    parse_xml,
    positive_float,
)

__all__ = ["read_philips"]

FORMAT = "Philips XML"
_STD12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# A 12-lead 11 s record compresses to ~0.2 MB; LZW can expand hostile input a lot, so bound it.
MAX_XLI_BYTES = 5 * 1024 * 1024


def _first(root: Element, name: str) -> Element | None:
    for element in root.iter():
        if local_name(element) == name:
            return element
    return None


def _einthoven_holds(leads: dict[str, NDArray[np.int64]]) -> bool:
    """True when the stored III equals II − I within rounding (whole leads, not residuals)."""
    residual = np.abs(leads["II"] - leads["I"] - leads["III"])
    return bool(np.percentile(residual, 95) <= 2)


def _reconstruct(leads: dict[str, NDArray[np.int64]]) -> None:
    lead_i, lead_ii = leads["I"], leads["II"]
    lead_iii = lead_ii - lead_i - leads["III"]
    leads["III"] = lead_iii
    leads["aVR"] = -leads["aVR"] - (lead_i + lead_ii) // 2
    leads["aVL"] = (lead_i - lead_iii) // 2 - leads["aVL"]
    leads["aVF"] = (lead_ii + lead_iii) // 2 - leads["aVF"]


def read_philips(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> FormatRecord:
    """Read the parsed 12-lead waveforms of a Philips XML file; see the module docstring."""
    source = str(path)
    root = parse_xml(path, max_bytes)
    if local_name(root) != "restingecgdata":
        raise FormatError(source, f"{FORMAT}: root element is <{local_name(root)}>, expected <restingecgdata>")
    rate = _first(root, "samplingrate")
    resolution = _first(root, "resolution")
    waveforms = _first(root, "parsedwaveforms")
    if waveforms is None:
        raise FormatError(source, f"{FORMAT}: no <parsedwaveforms>")
    fs = positive_float(
        rate.text if rate is not None else waveforms.get("samplespersecond"), source, f"{FORMAT}: sampling rate"
    )
    uv_per_lsb = positive_float(
        resolution.text if resolution is not None else waveforms.get("resolution"), source, f"{FORMAT}: resolution"
    )
    duration_ms = positive_float(waveforms.get("durationperchannel"), source, f"{FORMAT}: durationperchannel")
    n_samples = round(duration_ms * fs / 1000.0)
    labels_text = waveforms.get("leadlabels")
    labels = labels_text.split() if labels_text else list(_STD12)
    n_leads_text = waveforms.get("numberofleads")
    if n_leads_text and n_leads_text.isdigit():
        labels = labels[: int(n_leads_text)]
    encoding = waveforms.get("dataencoding", "Base64")
    if encoding != "Base64":
        raise FormatError(source, f"{FORMAT}: waveform encoding {encoding!r} not supported (expected Base64)")
    compression = waveforms.get("compression") or waveforms.get("compressmethod") or "Uncompressed"
    data = decode_base64(waveforms.text, source, f"{FORMAT}: parsedwaveforms")
    notes: list[str] = []
    if compression.upper() == "XLI":
        if len(data) > MAX_XLI_BYTES:
            raise FormatError(source, f"{FORMAT}: XLI block of {len(data)} bytes exceeds {MAX_XLI_BYTES} bytes")
        from sierraecg.xli import xli_decode

        try:
            decoded = xli_decode(data, labels)
        except (ValueError, IndexError, OverflowError, KeyError) as error:
            raise FormatError(source, f"{FORMAT}: XLI waveform data is corrupted ({error})") from None
        if len(decoded) < len(labels) or any(len(d) < n_samples for d in decoded[: len(labels)]):
            raise FormatError(source, f"{FORMAT}: XLI data holds fewer leads or samples than declared (truncated?)")
        arrays = [np.asarray(d[:n_samples], dtype=np.int64) for d in decoded[: len(labels)]]
    elif compression.lower() == "uncompressed":
        samples = int16_samples(data, source, f"{FORMAT}: parsedwaveforms", n_samples * len(labels))
        arrays = [samples[i * n_samples : (i + 1) * n_samples].astype(np.int64) for i in range(len(labels))]
    else:
        raise FormatError(source, f"{FORMAT}: waveform compression {compression!r} not supported (XLI or Uncompressed)")
    leads = {canonical_lead(label): array for label, array in zip(labels, arrays, strict=True)}
    if all(lead in leads for lead in ("I", "II", "III", "aVR", "aVL", "aVF")):
        if _einthoven_holds(leads):
            notes.append("limb leads stored whole (Einthoven's law holds on the stored values)")
        else:
            _reconstruct(leads)
            notes.append("leads III, aVR, aVL, aVF reconstructed from stored residuals (Philips lead coding)")
    to_mv = uv_per_lsb * 1e-3
    channels = [(name, array.astype(np.float64) * to_mv) for name, array in leads.items()]
    return assemble_leads(source, FORMAT, channels, fs, notes)
