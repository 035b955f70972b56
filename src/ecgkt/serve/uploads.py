"""Untrusted uploads → `EcgInput`: content checks first, then the same readers as `ecgkt predict`.

Order of defence, cheapest first, so a hostile or broken file is refused before any parser that
could misbehave on it runs:
1. the body size limit (middleware, before this module sees anything);
2. recognition by content, never by file name: DICOM has 'DICM' at byte 128, NumPy arrays start
   with '\\x93NUMPY', .npz files are zip archives ('PK\\x03\\x04'), JSON starts with '{', a WFDB
   header is short printable text whose first record line parses;
3. structural checks per kind: a .npy header declares a plain numeric dtype (no object arrays, so
   no pickle) and exactly as many bytes as were sent; a .npz holds only .npy members, unencrypted,
   whose declared sizes stay bounded (no zip bombs); a WFDB header names one plain-file-name signal
   file, which must have been uploaded too and be long enough for the declared samples;
4. only then the shared readers (`ecgkt.signals.readers`), whose own errors become `invalid_ecg`.

Readers that need a path (WFDB, DICOM, .npz) get the bytes written into a fresh private folder
(mode 0700, files 0600, names chosen by us, never by the client) that is always deleted afterwards.
NumPy arrays and JSON are parsed in memory. Errors name the client's file name (sanitised), never
the temporary path.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ecgkt.signals.formats import STORED_SUFFIX, sniff_format
from ecgkt.signals.readers import EcgInput, EcgInputError, read_ecg, read_ecg_array

UploadKind = Literal["wfdb", "dicom", "npy", "npz", "json", "vendor"]
FileKind = Literal["dicom", "npy", "npz", "json", "wfdb_header", "wfdb_data", "vendor"]
Units = Literal["auto", "mV", "uV"]
MissingLeads = Literal["error", "zero"]

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"
MAX_HEADER_BYTES = 64 * 1024
MAX_SIGNALS = 64
MAX_NPZ_MEMBERS = 8
# A .npz may expand to at most this many times the upload limit (arrays compress ~2-4x).
NPZ_EXPANSION_LIMIT = 8
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
# Bytes per sample of the WFDB storage formats whose size we can check before parsing.
_WFDB_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1,
    "80": 1,
    "16": 2,
    "61": 2,
    "160": 2,
    "212": 1.5,
    "24": 3,
    "32": 4,
    "310": 4 / 3,
    "311": 4 / 3,
}


class UploadError(Exception):
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


@dataclass(frozen=True)
class ParsedUpload:
    """A recognised, checked and read upload. `ecg.source` is the client's file name."""

    kind: UploadKind
    ecg: EcgInput


class EcgJsonPayload(BaseModel):
    """A JSON ECG: `signal` is leads × samples (or samples × leads) in physical units.

    `null` (or a non-standard `NaN`) marks a missing sample; it is interpolated like NaN in files.
    `sampling_rate_hz` must be a JSON number: a string such as "500" is refused, not guessed.
    """

    model_config = ConfigDict(extra="forbid")

    signal: list[list[float | None]] = Field(min_length=1, max_length=100_000)
    sampling_rate_hz: float = Field(strict=True, gt=0, le=100_000, allow_inf_nan=False)
    leads: list[str] | None = Field(None, min_length=1, max_length=MAX_SIGNALS)
    units: Units = "auto"
    missing_leads: MissingLeads = "error"

    @model_validator(mode="after")
    def _rectangular(self) -> EcgJsonPayload:
        lengths = {len(row) for row in self.signal}
        if len(lengths) != 1:
            raise ValueError(f"signal rows must all have the same length, got lengths {sorted(lengths)[:5]}")
        if 0 in lengths:
            raise ValueError("signal rows are empty")
        return self


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
            rate = float(text)
        except ValueError:
            raise UploadError(
                422, "invalid_options", f"sampling_rate_hz must be a number of Hz, got {text[:40]!r}"
            ) from None
        if not math.isfinite(rate) or rate <= 0:
            raise UploadError(422, "invalid_options", f"sampling_rate_hz must be positive and finite, got {text[:40]}")
    leads = _parse_leads(fields.get("leads", ""))
    units = fields.get("units", "").strip() or "auto"
    unit_aliases: dict[str, Units] = {"auto": "auto", "mv": "mV", "uv": "uV", "µv": "uV", "μv": "uV"}
    if units.lower() not in unit_aliases:
        raise UploadError(422, "invalid_options", f"units must be auto, mV or uV, got {units[:20]!r}")
    missing = fields.get("missing_leads", "").strip() or "error"
    if missing not in ("error", "zero"):
        raise UploadError(422, "invalid_options", f"missing_leads must be error or zero, got {missing[:20]!r}")
    return ReaderOptions(rate, leads, unit_aliases[units.lower()], "zero" if missing == "zero" else "error")


def _parse_leads(text: str) -> tuple[str, ...] | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
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
    if lowered.endswith(".hea") or _looks_like_wfdb_header(data):
        return "wfdb_header"
    if lowered.endswith(".dat"):
        return "wfdb_data"
    raise UploadError(
        415,
        "unrecognised_file",
        f"{upload.filename}: not a supported ECG file (no DICOM 'DICM' marker at byte 128, no NumPy or "
        "zip signature, not a WFDB header or .dat, not JSON, not GE/Philips/HL7 aECG XML, SCP-ECG or EDF)",
    )


def _looks_like_wfdb_header(data: bytes) -> bool:
    try:
        _record_line(_header_lines(data, "header"))
    except UploadError:
        return False
    return True


# ---- parsing ----------------------------------------------------------------------------------


def parse_json_document(data: bytes, source: str) -> EcgInput:
    """A JSON body (or uploaded .json file) → `EcgInput` via `read_ecg_array`."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UploadError(422, "invalid_json", f"{source}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise UploadError(422, "invalid_json", f"{source}: expected a JSON object with 'signal' and 'sampling_rate_hz'")
    try:
        payload = EcgJsonPayload.model_validate(document)
    except ValidationError as error:
        raise UploadError(422, "invalid_json", f"{source}: {_first_validation_error(error)}") from None
    matrix = np.array(
        [[math.nan if value is None else value for value in row] for row in payload.signal], dtype=np.float64
    )
    return _read(
        lambda: read_ecg_array(
            matrix,
            payload.sampling_rate_hz,
            payload.leads,
            source=source,
            units=payload.units,
            missing_leads=payload.missing_leads,
        ),
        source,
    )


def _first_validation_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{location}: {first['msg']}"


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
            _check_npz(upload)
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


def _read(reader: Callable[[], EcgInput], source: str, temporary_source: str | None = None) -> EcgInput:
    """Run a shared reader; its `EcgInputError` becomes `invalid_ecg` naming the client's file."""
    try:
        ecg = reader()
    except EcgInputError as error:
        problem = error.problem
        if temporary_source:
            problem = problem.replace(temporary_source, source)
        raise UploadError(422, "invalid_ecg", f"{source}: {problem}") from None
    return replace(ecg, source=source)


# ---- NumPy ------------------------------------------------------------------------------------


def _npy_header(data: bytes, source: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, header length) of a .npy, checked without unpickling or allocating."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as error:
        raise UploadError(422, "invalid_numpy", f"{source}: malformed .npy header ({error})") from None
    return tuple(int(n) for n in shape), dtype, stream.tell()


def _check_npy_dtype(dtype: np.dtype[Any], source: str, allow_text: bool = False) -> None:
    if dtype.hasobject or dtype.fields is not None:
        raise UploadError(422, "unsafe_numpy", f"{source}: object or structured arrays are refused (they need pickle)")
    allowed = "biuf" + ("US" if allow_text else "")
    if dtype.kind not in allowed:
        raise UploadError(422, "invalid_numpy", f"{source}: array dtype {dtype} is not numeric")


def _parse_npy(upload: UploadedFile, sidecar: UploadedFile | None, options: ReaderOptions) -> EcgInput:
    source = upload.filename
    shape, dtype, offset = _npy_header(upload.data, source)
    _check_npy_dtype(dtype, source)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    sent = len(upload.data) - offset
    if sent != expected:
        kind = "truncated_file" if sent < expected else "invalid_numpy"
        raise UploadError(
            422, kind, f"{source}: header declares {shape} {dtype} ({expected} bytes) but {sent} bytes follow"
        )
    array: NDArray[Any] = np.load(io.BytesIO(upload.data), allow_pickle=False)
    side = _sidecar(sidecar) if sidecar is not None else {}
    rate = options.sampling_rate_hz if options.sampling_rate_hz is not None else side.get("sampling_rate_hz")
    if rate is None:
        raise UploadError(
            422,
            "missing_sampling_rate",
            f"{source}: a .npy array needs its sampling rate: send the form field sampling_rate_hz "
            'or a sidecar JSON file {"sampling_rate_hz": 500, "leads": [...], "units": "mV"}',
        )
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise UploadError(
            422,
            "invalid_json",
            f"{sidecar.filename if sidecar else source}: sampling_rate_hz must be a number",
        )
    leads = options.lead_names if options.lead_names is not None else _sidecar_leads(side, sidecar)
    units = options.units
    if units == "auto" and side.get("units") is not None:
        units = _sidecar_units(side["units"], sidecar)
    return _read(
        lambda: read_ecg_array(
            array, float(rate), leads, source=source, units=units, missing_leads=options.missing_leads
        ),
        source,
    )


def _sidecar(upload: UploadedFile) -> dict[str, Any]:
    try:
        content = json.loads(upload.data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UploadError(422, "invalid_json", f"{upload.filename}: sidecar is not valid JSON ({error})") from None
    if not isinstance(content, dict):
        raise UploadError(422, "invalid_json", f"{upload.filename}: sidecar must be a JSON object")
    unknown = sorted(set(content) - {"sampling_rate_hz", "leads", "units"})
    if unknown:
        raise UploadError(422, "invalid_json", f"{upload.filename}: unknown sidecar key(s) {', '.join(unknown)}")
    return content


def _sidecar_leads(side: dict[str, Any], sidecar: UploadedFile | None) -> tuple[str, ...] | None:
    leads = side.get("leads")
    if leads is None:
        return None
    if not isinstance(leads, list) or not all(isinstance(v, str) for v in leads) or len(leads) > MAX_SIGNALS:
        name = sidecar.filename if sidecar else "sidecar"
        raise UploadError(422, "invalid_json", f"{name}: leads must be a list of lead names")
    return tuple(leads)


def _sidecar_units(value: Any, sidecar: UploadedFile | None) -> Units:
    aliases: dict[str, Units] = {"mv": "mV", "uv": "uV", "µv": "uV", "μv": "uV", "auto": "auto"}
    if not isinstance(value, str) or value.lower() not in aliases:
        name = sidecar.filename if sidecar else "sidecar"
        raise UploadError(422, "invalid_json", f"{name}: units must be mV or uV")
    return aliases[value.lower()]


def _check_npz(upload: UploadedFile) -> None:
    """Zip structure, member names and declared sizes, and each member's .npy header."""
    source = upload.filename
    try:
        archive = zipfile.ZipFile(io.BytesIO(upload.data))
    except zipfile.BadZipFile as error:
        raise UploadError(422, "invalid_npz", f"{source}: not a readable .npz (zip) archive ({error})") from None
    with archive:
        members = archive.infolist()
        if not members or len(members) > MAX_NPZ_MEMBERS:
            raise UploadError(
                422,
                "invalid_npz",
                f"{source}: an ECG .npz holds 1 to {MAX_NPZ_MEMBERS} arrays, found {len(members)}",
            )
        total = 0
        for member in members:
            if member.flag_bits & 0x1:
                raise UploadError(422, "invalid_npz", f"{source}: encrypted archive members are refused")
            if "/" in member.filename or not member.filename.endswith(".npy"):
                raise UploadError(
                    422,
                    "invalid_npz",
                    f"{source}: unexpected member {member.filename[:60]!r} (only .npy arrays)",
                )
            total += member.file_size
            with archive.open(member) as handle:
                head = handle.read(MAX_HEADER_BYTES)
            member_source = f"{source}[{member.filename}]"
            if not head.startswith(NPY_MAGIC):
                raise UploadError(422, "invalid_npz", f"{member_source}: member is not a .npy array")
            shape, dtype, _ = _npy_header(head, member_source)
            _check_npy_dtype(dtype, member_source, allow_text=True)
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if declared > member.file_size:
                raise UploadError(
                    422,
                    "truncated_file",
                    f"{member_source}: declares {declared} bytes, archive holds {member.file_size}",
                )
        if total > NPZ_EXPANSION_LIMIT * max(len(upload.data), 1) and total > 64 * 1024 * 1024:
            raise UploadError(
                422, "invalid_npz", f"{source}: archive expands to {total} bytes, refused (compression bomb?)"
            )


# ---- WFDB -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WfdbHeader:
    record_name: str
    n_signals: int
    n_samples: int | None
    signal_file: str
    storage_format: str
    byte_offset: int


def _header_lines(data: bytes, source: str) -> list[str]:
    if len(data) > MAX_HEADER_BYTES:
        raise UploadError(422, "invalid_wfdb_header", f"{source}: a WFDB header is text of at most 64 KiB")
    if b"\x00" in data:
        raise UploadError(422, "invalid_wfdb_header", f"{source}: header contains binary data (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(422, "invalid_wfdb_header", f"{source}: header is not UTF-8/ASCII text") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _record_line(lines: list[str]) -> tuple[str, int, int | None]:
    """(record name, number of signals, samples per signal or None) from the first line."""
    if not lines:
        raise UploadError(422, "invalid_wfdb_header", "header has no record line")
    tokens = lines[0].split()
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise UploadError(422, "invalid_wfdb_header", "first header line must be 'RECORD NSIG [FS [NSAMP ...]]'")
    name = tokens[0]
    if "/" in name:
        raise UploadError(422, "invalid_wfdb_header", "multi-segment WFDB records are not supported")
    if not _SAFE_NAME.match(name):
        raise UploadError(422, "invalid_wfdb_header", f"record name {name[:40]!r} is not a plain name")
    n_samples = int(tokens[3]) if len(tokens) > 3 and tokens[3].isdigit() else None
    return name, int(tokens[1]), n_samples


def parse_wfdb_header(data: bytes, source: str) -> _WfdbHeader:
    """Sanity of a WFDB header before wfdb sees it: record line, signal lines, one safe signal file."""
    lines = _header_lines(data, source)
    try:
        name, n_signals, n_samples = _record_line(lines)
    except UploadError as error:
        raise UploadError(error.status_code, error.kind, f"{source}: {error.detail}") from None
    if not 1 <= n_signals <= MAX_SIGNALS:
        raise UploadError(
            422, "invalid_wfdb_header", f"{source}: declares {n_signals} signals (1 to {MAX_SIGNALS} allowed)"
        )
    signal_lines = lines[1 : 1 + n_signals]
    if len(signal_lines) != n_signals:
        raise UploadError(
            422,
            "invalid_wfdb_header",
            f"{source}: declares {n_signals} signals but has {len(signal_lines)} signal lines",
        )
    files, formats, offsets = set(), set(), set()
    for line in signal_lines:
        tokens = line.split()
        if len(tokens) < 2:
            raise UploadError(422, "invalid_wfdb_header", f"{source}: signal line {line[:40]!r} lacks a format")
        files.add(tokens[0])
        match = re.fullmatch(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?", tokens[1])
        if match is None:
            raise UploadError(422, "invalid_wfdb_header", f"{source}: unreadable signal format {tokens[1][:20]!r}")
        storage, offset = match.group(1), match.group(2)
        formats.add(storage)
        offsets.add(int(offset) if offset else 0)
    if len(files) != 1:
        raise UploadError(
            422,
            "invalid_wfdb_header",
            f"{source}: signals are spread over {len(files)} files; one signal file is supported",
        )
    signal_file = files.pop()
    if not _SAFE_NAME.match(signal_file) or ".." in signal_file:
        raise UploadError(
            422,
            "invalid_wfdb_header",
            f"{source}: signal file name {signal_file[:40]!r} is not a plain file name",
        )
    if len(formats) != 1:
        raise UploadError(
            422, "invalid_wfdb_header", f"{source}: mixed storage formats {sorted(formats)} are not supported"
        )
    return _WfdbHeader(name, n_signals, n_samples, signal_file, formats.pop(), max(offsets))


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
    header = parse_wfdb_header(header_upload.data, header_upload.filename)
    if not data_files:
        raise UploadError(
            422,
            "wfdb_missing_data",
            f"{header_upload.filename}: WFDB header sent without its signal file {header.signal_file}; "
            "upload the .hea and the .dat together",
        )
    data = data_files[0]
    per_sample = _WFDB_BYTES_PER_SAMPLE.get(header.storage_format)
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
