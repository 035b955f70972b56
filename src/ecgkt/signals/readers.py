"""ECG input for inference: any registered file format, or an in-memory array → one `EcgInput`.

The front door of `ecgkt.signals`: `read_ecg` finds the reader (`registry`), the reader does only
format work (`wfdb_record`, `dicom`, `npy`, `json_ecg`, vendor formats in `signals.formats`), and
every path ends in the same assembly step (`assembly.assemble`), so lead selection by name, unit
conversion, limits, validation and the input notes behave identically whatever the file format: a
record read here and then `prepare_windows`-ed is exactly what the model was trained on (the store
uses the same `ecgkt.signals.preprocess` path).

Every problem is an `EcgInputError` whose message starts with the file (or array) name.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ecgkt.signals.assembly import (
    AUTO_MICROVOLT_THRESHOLD,
    EcgInput,
    MissingLeads,
    Overrides,
    RawEcg,
    assemble,
    make_overrides,
    prepare_windows,
)
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.registry import folder_suffixes, format_for
from ecgkt.signals.units import Units
from ecgkt.signals.wfdb_record import names_wfdb_record, read_wfdb, wfdb_header_path

__all__ = [
    "AUTO_MICROVOLT_THRESHOLD",
    "INPUT_SUFFIXES",
    "EcgInput",
    "EcgInputError",
    "MissingLeads",
    "Units",
    "iter_inputs",
    "prepare_windows",
    "read_ecg",
    "read_ecg_array",
]

INPUT_SUFFIXES: tuple[str, ...] = (".hea", ".dcm", ".npy", ".npz", ".xml", ".edf", ".scp")


def read_ecg(
    path: Path | str,
    *,
    missing_leads: MissingLeads = "error",
    sampling_rate_hz: float | None = None,
    lead_names: Sequence[str] | None = None,
    units: Units | str = "auto",
) -> EcgInput:
    """Read a WFDB record (with or without extension), a DICOM ECG, a `.npy`/`.npz`, a JSON ECG document
    or any format registered in `ecgkt.signals.registry`.

    Explicit arguments override what the file says (with a note when they differ). For `.npy` the
    sampling rate must come from the argument or a sidecar JSON; lead names default to the canonical
    order (noted). `units="auto"` uses the file's declared units, else the amplitude rule.
    """
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    overrides = make_overrides(sampling_rate_hz, lead_names, units, missing_leads)
    header = wfdb_header_path(path)
    if header is not None and (suffix in (".hea", ".dat") or not path.is_file()):
        return assemble(read_wfdb(header, source), overrides)
    if not path.exists():
        raise EcgInputError(source, "no such file")
    if not path.is_file():
        raise EcgInputError(source, "not a file (folders are expanded by iter_inputs)")
    input_format = format_for(path)
    if input_format is None:
        raise EcgInputError(
            source,
            f"unsupported file type {suffix or '(no extension)'}; "
            "expected WFDB .hea, DICOM .dcm, .npy, .npz, a JSON ECG document, GE MUSE/CardioSoft, Philips or "
            "HL7 aECG .xml, SCP-ECG .scp or EDF .edf",
        )
    reading = input_format.read(path, source)
    if isinstance(reading, tuple):
        raw, own = reading
        overrides = _merge(own, overrides)
    else:
        raw = reading
    return assemble(raw, overrides)


def _merge(document: Overrides, given: Overrides) -> Overrides:
    """A document's own options, with the caller's explicit ones taking precedence."""
    return Overrides(
        sampling_rate_hz=given.sampling_rate_hz,
        lead_names=given.lead_names if given.lead_names is not None else document.lead_names,
        units=given.units if given.units != "auto" else document.units,
        missing_leads="zero" if "zero" in (given.missing_leads, document.missing_leads) else "error",
    )


def read_ecg_array(
    array: ArrayLike,
    sampling_rate_hz: float,
    lead_names: Sequence[str] | None,
    source: str = "array",
    units: Units | str = "auto",
    missing_leads: MissingLeads = "error",
) -> EcgInput:
    """An in-memory array (leads × samples or samples × leads, physical units) → `EcgInput`.

    `lead_names=None` assumes the canonical order I, II, III, aVR, aVL, aVF, V1–V6 (noted).
    """
    try:
        matrix = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as error:
        raise EcgInputError(source, f"signal is not a numeric array ({error})") from None
    raw = RawEcg(source=source, signal=matrix, sampling_rate_hz=sampling_rate_hz, lead_names=None)
    return assemble(raw, make_overrides(sampling_rate_hz, lead_names, units, missing_leads))


def iter_inputs(paths: Sequence[Path | str]) -> list[Path]:
    """Expand folders (recursively: .hea, .dcm, .npy, .npz and registered formats) and CSV lists
    (column `path`) into inputs.

    CSV entries are resolved relative to the CSV's folder (so MIMIC's `record_list.csv` works as is)
    and are not checked here: a missing entry fails when it is read, naming that file. Order is kept,
    duplicates are dropped. Raises `EcgInputError` for a missing path, an empty folder or list.
    """
    found: list[Path] = []
    suffixes = folder_suffixes()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
            if not matches:
                raise EcgInputError(str(path), f"folder contains no ECG files ({', '.join(suffixes)})")
            found.extend(matches)
        elif path.suffix.lower() == ".csv":
            found.extend(_paths_from_csv(path))
        elif path.exists() or names_wfdb_record(path):
            found.append(path)
        else:
            raise EcgInputError(str(path), "no such file or folder")
    if not found:
        raise EcgInputError("inputs", "no input files given")
    return list(dict.fromkeys(found))


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
