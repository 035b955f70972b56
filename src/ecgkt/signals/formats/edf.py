"""EDF and EDF+ (European Data Format; monitoring and Holter exports) via `edfio`.

`edfio` (Apache-2.0, pure Python on NumPy, maintained) parses the header and returns each signal in
physical units (its `physical_dimension`, uV or mV for ECG); EDF+ annotation signals are kept
apart by edfio and ignored here. Channels are matched to leads by label ("ECG I", "II", "V1");
channels that are not ECG leads (SpO2, respiration) are ignored with a note. The leads used must
share one sampling rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgkt.signals.formats._base import (
    DEFAULT_MAX_BYTES,
    FormatError,
    FormatRecord,
    assemble_leads,
    canonical_lead,
    check_size,
    unit_factor,
)
from ecgkt.signals.leads import CANONICAL_LEADS

__all__ = ["read_edf"]

FORMAT = "EDF"


def read_edf(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, *, ecg_leads_only: bool = True) -> FormatRecord:
    """Read the ECG-lead channels of an EDF/EDF+ file in mV.

    `ecg_leads_only=False` keeps every ordinary signal (used to check the reader on non-ECG example
    files); the shared assembly selects the 12 leads by name either way.
    """
    import edfio

    source = str(path)
    check_size(path, max_bytes)
    try:
        edf = edfio.read_edf(path)
    except (ValueError, OSError, UnicodeDecodeError, IndexError) as error:
        raise FormatError(source, f"{FORMAT}: not a readable EDF/EDF+ file ({error})") from None
    notes: list[str] = []
    chosen = []
    ignored = []
    for signal in edf.signals:
        if not ecg_leads_only or canonical_lead(signal.label) in CANONICAL_LEADS:
            chosen.append(signal)
        else:
            ignored.append(signal.label)
    if ignored:
        notes.append(f"ignored non-lead channel(s) {', '.join(ignored)}")
    if not chosen:
        raise FormatError(source, f"{FORMAT}: no ECG lead channel (labels {[s.label for s in edf.signals]})")
    rates = {float(s.sampling_frequency) for s in chosen}
    if len(rates) > 1:
        raise FormatError(source, f"{FORMAT}: ECG leads have different sampling rates {sorted(rates)} Hz")
    channels = []
    for signal in chosen:
        to_mv = unit_factor(signal.physical_dimension, source, f"{FORMAT}: channel {signal.label}")
        channels.append((signal.label, np.asarray(signal.data, dtype=np.float64) * to_mv))
    return assemble_leads(source, FORMAT, channels, rates.pop(), notes)
