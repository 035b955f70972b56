"""Which reader handles which file: a registry by suffix and by content, that a new format joins in one line.

```python
from ecgkt.signals.registry import InputFormat, register_format
register_format(InputFormat("muse-xml", (".xml",), read_muse_xml, sniff=looks_like_muse))
```

A reader takes `(path, source)` and returns a `RawEcg` (see `ecgkt.signals.assembly`), or
`(RawEcg, Overrides)` when the file carries its own reading options (the JSON ECG document). It
raises `EcgInputError(source, problem)` for anything it cannot read. `read_ecg` then runs the one
shared assembly, so units, leads, limits and notes behave the same for every format.

Dispatch: a WFDB record is recognised first (it may be named without extension); then the
suffix; then, for an unknown suffix, each format's `sniff` on the file's first 512 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ecgkt.signals.assembly import Overrides, RawEcg
from ecgkt.signals.dicom import looks_like_dicom, read_dicom
from ecgkt.signals.json_ecg import read_json_ecg
from ecgkt.signals.npy import NPY_MAGIC, read_npy, read_npz

__all__ = ["FORMATS", "InputFormat", "Reading", "format_for", "register_format"]

Reading = Union[RawEcg, tuple[RawEcg, Overrides]]  # noqa: UP007 (a runtime alias)
SNIFF_BYTES = 512


@dataclass(frozen=True)
class InputFormat:
    """One file format: its name (for messages), suffixes, reader and optional content test.

    `in_folders`: whether `iter_inputs` picks the suffix up when expanding a folder (False for
    `.json`, which is also the sidecar's suffix).
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path, str], Reading]
    sniff: Callable[[bytes], bool] | None = None
    in_folders: bool = True


def _dicom_sniff(head: bytes) -> bool:
    return head[128:132] == b"DICM"


FORMATS: list[InputFormat] = [
    InputFormat("DICOM", (".dcm", ".dicom"), lambda path, source: read_dicom(path, source), _dicom_sniff),
    InputFormat("NumPy .npy", (".npy",), read_npy, lambda head: head.startswith(NPY_MAGIC)),
    InputFormat("NumPy .npz", (".npz",), read_npz, lambda head: head.startswith(b"PK\x03\x04")),
    InputFormat("JSON ECG", (".json",), read_json_ecg, lambda head: head.lstrip()[:1] == b"{", in_folders=False),
]


def _read_vendor(path: Path, source: str) -> RawEcg:
    """GE MUSE / CardioSoft / Philips XML, HL7 aECG, SCP-ECG, EDF (`ecgkt.signals.formats`), in mV."""
    from ecgkt.signals.errors import EcgInputError
    from ecgkt.signals.formats import FormatError, read_format

    try:
        record = read_format(path)
    except FormatError as error:
        raise EcgInputError(source, error.problem) from None
    return RawEcg(source, record.signal_mv.T, record.sampling_rate_hz, record.leads, "mV", record.format, record.notes)


def _vendor_sniff(head: bytes) -> bool:
    from ecgkt.signals.formats import sniff_format

    return sniff_format(head) is not None


FORMATS.append(InputFormat("vendor ECG export", (".xml", ".edf", ".scp"), _read_vendor, _vendor_sniff))


def register_format(input_format: InputFormat) -> None:
    """Add a format (later registrations win for a shared suffix)."""
    FORMATS.insert(0, input_format)


def format_for(path: Path) -> InputFormat | None:
    """The format of an existing file, by suffix, else by content; None if no reader claims it."""
    suffix = path.suffix.lower()
    for input_format in FORMATS:
        if suffix in input_format.suffixes:
            return input_format
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    for input_format in FORMATS:
        if input_format.sniff is not None and input_format.sniff(head):
            return input_format
    return None


def folder_suffixes() -> tuple[str, ...]:
    """Suffixes `iter_inputs` collects from folders (WFDB headers plus every registered format)."""
    suffixes = [".hea"]
    for input_format in FORMATS:
        if input_format.in_folders:
            suffixes.extend(s for s in input_format.suffixes if s not in suffixes)
    return tuple(suffixes)


# `looks_like_dicom` stays importable from here for callers that sniffed DICOM by path.
__all__ += ["folder_suffixes", "looks_like_dicom"]
