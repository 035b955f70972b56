"""Untrusted uploads → `EcgInput`: what is specific to hostile bytes, then the shared readers.

Order of defence, cheapest first, so a hostile or broken file is refused before any parser that
could misbehave on it runs:
1. the body size limit (middleware, before this module sees anything);
2. recognition by content, never by file name: DICOM has 'DICM' at byte 128, NumPy arrays start
   with '\\x93NUMPY', .npz files are zip archives ('PK\\x03\\x04'), JSON starts with '{', a WFDB
   header is short printable text whose first record line parses;
3. structural checks per kind: a .npy header declares a plain numeric dtype (no object arrays, so
   no pickle) and exactly as many bytes as were sent; a .npz passes `signals.npy.check_npz` (the
   same bomb and pickle check `ecgkt predict` runs); a WFDB header passes the `untrusted` policy of
   `signals.wfdb_header` and its signal file must have been uploaded too and be long enough;
4. only then the shared readers and the one assembly step (`ecgkt.signals`), whose
   `EcgInputError`s become 422 with their `kind`.

Everything about the *content* (units, sidecar keys, the JSON ECG document, WFDB grammar, limits on
sampling rate and length) lives in `ecgkt.signals` and is shared with the CLI. Readers that need a
path (WFDB, DICOM, .npz) get the bytes written into a fresh private folder (mode 0700, files 0600,
names chosen by us, never by the client) that is always deleted afterwards. Errors name the
client's file name (sanitised), never the temporary path.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ecgkt.errors import UserError
from ecgkt.signals.assembly import EcgInput, MissingLeads, Overrides, assemble, make_overrides
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.formats import STORED_SUFFIX, sniff_format
from ecgkt.signals.json_ecg import parse_json_ecg
from ecgkt.signals.limits import MAX_SIGNALS
from ecgkt.signals.npy import NPY_MAGIC, check_npy_dtype, check_npz, npy_header, raw_from_array
from ecgkt.signals.readers import read_ecg
from ecgkt.signals.sidecar import Sidecar, parse_sidecar
from ecgkt.signals.units import UNIT_OPTIONS, Units, units_option
from ecgkt.signals.wfdb_header import FORMAT_BYTES_PER_SAMPLE, MAX_HEADER_BYTES, looks_like_header, untrusted

__all__ = [
    "DICOM_MAGIC",
    "NPY_MAGIC",
    "ZIP_MAGIC",
    "ParsedUpload",
    "ReaderOptions",
    "UploadError",
    "UploadedFile",
    "detect_kind",
    "parse_files",
    "parse_json_document",
    "parse_options",
    "private_folder",
    "sanitise_filename",
]

UploadKind = Literal["wfdb", "dicom", "npy", "npz", "json", "vendor"]
FileKind = Literal["dicom", "npy", "npz", "json", "wfdb_header", "wfdb_data", "vendor"]

ZIP_MAGIC = b"PK\x03\x04"
DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"


class UploadError(UserError):
    """A request the service refuses, with its HTTP status and a machine-readable kind.

    Rendered as `{"error": kind, "detail": detail}`; `detail` names the client's file and the problem.
    """

    def __init__(self, status_code: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file: the client's (sanitised) name and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ReaderOptions:
    """What `ecgkt predict` takes as options, sent as form fields next to the files."""

    sampling_rate_hz: float | None = None
    lead_names: tuple[str, ...] | None = None
    units: Units = "auto"
    missing_leads: MissingLeads = "error"

    def overrides(self) -> Overrides:
        return make_overrides(self.sampling_rate_hz, self.lead_names, self.units, self.missing_leads)


@dataclass(frozen=True)
class ParsedUpload:
    """A recognised, checked and read upload. `ecg.source` is the client's file name."""

    kind: UploadKind
    ecg: EcgInput


def sanitise_filename(name: str | None, fallback: str = "upload") -> str:
    """The client's file name reduced to a printable base name (for error messages and `source`)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:120] or fallback


def parse_options(fields: dict[str, str]) -> ReaderOptions:
    """Form fields → `ReaderOptions`; `leads` is a JSON list or a comma-separated string."""
    known = {"sampling_rate_hz", "leads", "units", "missing_leads"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UploadError(
            422,
            "invalid_options",
            f"unknown form field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}",
        )
    rate: float | None = None
    if fields.get("sampling_rate_hz", "").strip():
        text = fields["sampling_rate_hz"].strip()
        try:
            rate = float(text[:64])
        except ValueError:
            raise UploadError(
                422, "invalid_options", f"sampling_rate_hz must be a number of Hz, got {text[:40]!r}"
            ) from None
        if not math.isfinite(rate) or rate <= 0:
            raise UploadError(422, "invalid_options", f"sampling_rate_hz must be positive and finite, got {text[:40]}")
    leads = _parse_leads(fields.get("leads", ""))
    units = units_option(fields.get("units", "").strip() or "auto")
    if units is None:
        raise UploadError(
            422, "invalid_options", f"units must be {', '.join(UNIT_OPTIONS)}, got {fields['units'][:20]!r}"
        )
    missing = fields.get("missing_leads", "").strip() or "error"
    if missing not in ("error", "zero"):
        raise UploadError(422, "invalid_options", f"missing_leads must be error or zero, got {missing[:20]!r}")
    return ReaderOptions(rate, leads, units, "zero" if missing == "zero" else "error")


def _parse_leads(text: str) -> tuple[str, ...] | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise UploadError(422, "invalid_options", "leads is not a valid JSON list") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UploadError(422, "invalid_options", "leads must be a list of lead names")
        names = [v.strip() for v in value]
    else:
        names = [part.strip() for part in text.split(",")]
    if not 1 <= len(names) <= MAX_SIGNALS or any(not name for name in names):
        raise UploadError(422, "invalid_options", f"leads must name 1 to {MAX_SIGNALS} leads, none empty")
    return tuple(names)


# ---- recognition ------------------------------------------------------------------------------


def detect_kind(upload: UploadedFile) -> FileKind:
    """What a file is, from its bytes; the name only separates a WFDB .dat (which has no magic)."""
    data = upload.data
    if len(data) >= DICOM_MAGIC_OFFSET + 4 and data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == DICOM_MAGIC:
        return "dicom"
    if data.startswith(NPY_MAGIC):
        return "npy"
    if data.startswith(ZIP_MAGIC):
        return "npz"
    if data.lstrip()[:1] == b"{":
        return "json"
    if sniff_format(data[:MAX_HEADER_BYTES]) is not None:  # GE/Philips/HL7 XML, SCP-ECG, EDF (signals.formats)
        return "vendor"
    lowered = upload.filename.lower()
    if lowered.endswith(".hea") or looks_like_header(data):
        return "wfdb_header"
    if lowered.endswith(".dat"):
        return "wfdb_data"
    raise UploadError(
        415,
        "unrecognised_file",
        f"{upload.filename}: not a supported ECG file (no DICOM 'DICM' marker at byte 128, no NumPy or "
        "zip signature, not a WFDB header or .dat, not JSON, not GE/Philips/HL7 aECG XML, SCP-ECG or EDF)",
    )


# ---- parsing ----------------------------------------------------------------------------------


def _as_upload_error(error: EcgInputError, source: str, temporary_source: str | None = None) -> UploadError:
    """A shared reader's error as a 422 naming the client's file (never our temporary path)."""
    problem = error.problem
    if temporary_source:
        problem = problem.replace(temporary_source, source)
    where = error.source if error.source.startswith(source) else source
    if temporary_source and where.startswith(temporary_source):
        where = source
    return UploadError(422, error.kind, f"{where}: {problem}")


def _read(reader: Callable[[], EcgInput], source: str, temporary_source: str | None = None) -> EcgInput:
    """Run a shared reader; its `EcgInputError` becomes a 422 naming the client's file."""
    try:
        ecg = reader()
    except EcgInputError as error:
        raise _as_upload_error(error, source, temporary_source) from None
    return replace(ecg, source=source)


def parse_json_document(data: bytes, source: str, options: ReaderOptions | None = None) -> EcgInput:
    """A JSON body (or uploaded .json file) → `EcgInput` via the shared JSON ECG reader."""

    def read() -> EcgInput:
        raw, overrides = parse_json_ecg(data, source)
        return assemble(raw, overrides)

    return _read(read, source)


def parse_files(files: Sequence[UploadedFile], options: ReaderOptions) -> ParsedUpload:
    """Multipart files → one ECG. Accepted sets: a DICOM; a .npy (+ optional sidecar JSON); a .npz;
    a JSON document; a WFDB header plus its signal file."""
    if not files:
        raise UploadError(400, "no_file", "the upload holds no file; send one ECG file (or a WFDB .hea + .dat pair)")
    for upload in files:
        if not upload.data:
            raise UploadError(422, "empty_file", f"{upload.filename}: file is empty")
    kinds = [detect_kind(upload) for upload in files]
    by_kind: dict[FileKind, list[UploadedFile]] = {}
    for kind, upload in zip(kinds, files, strict=True):
        by_kind.setdefault(kind, []).append(upload)
    names = ", ".join(upload.filename for upload in files)

    if "wfdb_header" in by_kind or "wfdb_data" in by_kind:
        return ParsedUpload("wfdb", _parse_wfdb(by_kind, names, options))
    if len(files) == 1:
        upload, kind = files[0], kinds[0]
        if kind == "dicom":
            return ParsedUpload("dicom", _read_via_path(upload, "ecg.dcm", options))
        if kind == "npy":
            return ParsedUpload("npy", _parse_npy(upload, None, options))
        if kind == "npz":
            try:
                check_npz(io.BytesIO(upload.data), upload.filename, len(upload.data))
            except EcgInputError as error:
                raise _as_upload_error(error, upload.filename) from None
            return ParsedUpload("npz", _read_via_path(upload, "ecg.npz", options))
        if kind == "json":
            return ParsedUpload("json", parse_json_document(upload.data, upload.filename))
        if kind == "vendor":
            stored = "ecg" + STORED_SUFFIX[sniff_format(upload.data[:MAX_HEADER_BYTES]) or "edf"]
            return ParsedUpload("vendor", _read_via_path(upload, stored, options))
    if sorted(kinds) == ["json", "npy"]:
        return ParsedUpload("npy", _parse_npy(by_kind["npy"][0], by_kind["json"][0], options))
    raise UploadError(
        400,
        "unexpected_files",
        f"cannot combine {names}: send one DICOM, .npy (optionally with a sidecar .json), .npz or "
        "JSON file, or one WFDB header with its signal file",
    )


# ---- NumPy: the .npy structure is checked on the bytes, before np.load ---------------------------


def _parse_npy(upload: UploadedFile, sidecar_upload: UploadedFile | None, options: ReaderOptions) -> EcgInput:
    source = upload.filename

    def read() -> EcgInput:
        shape, dtype, offset = npy_header(upload.data, source)
        check_npy_dtype(dtype, source)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        sent = len(upload.data) - offset
        if sent != expected:
            kind = "truncated_file" if sent < expected else "invalid_numpy"
            raise EcgInputError(
                source, f"header declares {shape} {dtype} ({expected} bytes) but {sent} bytes follow", kind
            )
        array: NDArray[Any] = np.load(io.BytesIO(upload.data), allow_pickle=False)
        sidecar = (
            parse_sidecar(sidecar_upload.data, source, sidecar_upload.filename)
            if sidecar_upload is not None
            else Sidecar()
        )
        if options.sampling_rate_hz is None and sidecar.sampling_rate_hz is None:
            raise EcgInputError(
                source,
                "a .npy array needs its sampling rate: send the form field sampling_rate_hz "
                'or a sidecar JSON file {"sampling_rate_hz": 500, "leads": [...], "units": "mV"}',
                "missing_sampling_rate",
            )
        return assemble(raw_from_array(array, sidecar, source), options.overrides())

    return _read(read, source)


# ---- WFDB -------------------------------------------------------------------------------------


def _parse_wfdb(by_kind: dict[FileKind, list[UploadedFile]], names: str, options: ReaderOptions) -> EcgInput:
    headers = by_kind.get("wfdb_header", [])
    data_files = by_kind.get("wfdb_data", [])
    others = [kind for kind in by_kind if kind not in ("wfdb_header", "wfdb_data")]
    if others or len(headers) > 1 or len(data_files) > 1:
        raise UploadError(400, "unexpected_files", f"cannot combine {names}: a WFDB upload is one .hea and one .dat")
    if not headers:
        raise UploadError(
            422,
            "wfdb_missing_header",
            f"{data_files[0].filename}: WFDB signal file sent without its .hea header",
        )
    header_upload = headers[0]
    try:
        header = untrusted(header_upload.data, header_upload.filename)
    except EcgInputError as error:
        raise _as_upload_error(error, header_upload.filename) from None
    if not data_files:
        raise UploadError(
            422,
            "wfdb_missing_data",
            f"{header_upload.filename}: WFDB header sent without its signal file {header.signal_file}; "
            "upload the .hea and the .dat together",
        )
    data = data_files[0]
    per_sample = FORMAT_BYTES_PER_SAMPLE.get(header.storage_format)
    if header.n_samples and per_sample is not None:
        needed = header.byte_offset + math.ceil(header.n_samples * header.n_signals * per_sample)
        if len(data.data) < needed:
            raise UploadError(
                422,
                "truncated_file",
                f"{data.filename}: signal file holds {len(data.data)} bytes, the header needs {needed} "
                f"({header.n_signals} signals × {header.n_samples} samples, format {header.storage_format})",
            )
    with private_folder() as folder:
        _write_private(folder / f"{header.record_name}.hea", header_upload.data)
        _write_private(folder / header.signal_file, data.data)
        record = folder / header.record_name
        return _read(lambda: read_ecg(record, **_reader_kwargs(options)), header_upload.filename, str(record))


# ---- readers that need a path ------------------------------------------------------------------


@contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh 0700 folder for one request's files, removed whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="ecgkt-upload-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _reader_kwargs(options: ReaderOptions) -> dict[str, Any]:
    return {
        "sampling_rate_hz": options.sampling_rate_hz,
        "lead_names": options.lead_names,
        "units": options.units,
        "missing_leads": options.missing_leads,
    }


def _read_via_path(upload: UploadedFile, stored_name: str, options: ReaderOptions) -> EcgInput:
    with private_folder() as folder:
        path = folder / stored_name
        _write_private(path, upload.data)
        return _read(lambda: read_ecg(path, **_reader_kwargs(options)), upload.filename, str(path))
