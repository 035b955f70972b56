"""ECG signal handling shared by the cohort builder and inference: lead names, units, preprocessing, readers.

Layout (see README.md): `readers` (front door) → `registry` (which reader) → one module per format
(`wfdb_record`, `dicom`, `npy`, `json_ecg`; vendor formats in `formats/`) → `assembly` (the one
step every reader ends in) → `preprocess` / `windows` (what the model sees). Shared vocabulary:
`units`, `leads`, `limits`, `quality`, `sidecar`, `wfdb_header`, `errors`.

The public names below are loaded lazily, so importing `ecgkt.signals.leads` (the builder, the
bundle) does not import the readers.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EcgInput",
    "EcgInputError",
    "RawEcg",
    "assemble",
    "iter_inputs",
    "prepare_windows",
    "read_ecg",
    "read_ecg_array",
]

_HOME = {
    "EcgInput": "ecgkt.signals.assembly",
    "RawEcg": "ecgkt.signals.assembly",
    "assemble": "ecgkt.signals.assembly",
    "prepare_windows": "ecgkt.signals.assembly",
    "EcgInputError": "ecgkt.signals.errors",
    "iter_inputs": "ecgkt.signals.readers",
    "read_ecg": "ecgkt.signals.readers",
    "read_ecg_array": "ecgkt.signals.readers",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'ecgkt.signals' has no attribute {name!r}")
