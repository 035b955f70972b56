"""DICOM 12-lead ECG waveforms (`.dcm`, or any file with the `DICM` preamble) → `RawEcg`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecgkt.signals.assembly import RawEcg
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.leads import CANONICAL_LEADS, normalise_lead_name

__all__ = ["looks_like_dicom", "read_dicom"]

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


def looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def read_dicom(path: Path, source: str) -> RawEcg:
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
        raise EcgInputError(source, f"corrupt DICOM waveform data in multiplex group {index} ({error})") from None
    label = str(group.get("MultiplexGroupLabel", "")).strip()
    notes: list[str] = []
    if len(groups) > 1:
        notes.append(f"used DICOM multiplex group {index}{f' {label!r}' if label else ''} of {len(groups)}")
    channels = group.get("ChannelDefinitionSequence") or []
    return RawEcg(
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
