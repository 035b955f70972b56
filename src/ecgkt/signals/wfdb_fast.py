"""A fast reader for the one WFDB shape 12-lead ECG archives use; everything else goes through `wfdb`.

Why: with pandas 3, `wfdb.rdheader` spends ~7-15 ms per header in pandas scalar look-ups
(`SIGNAL_SPECS.loc[...]` for every field of every signal line), and `wfdb.rdrecord` parses the header
again. That caps the cohort builder's ingestion and is most of a single-ECG prediction's overhead.
MIMIC-IV-ECG (and PTB-XL, the PhysioNet challenge sets) store a single-segment header and one
format-16 `.dat` holding all signals interleaved, which the WFDB header specification
(physionet.org/physiotools/wag/header-5.htm) makes simple to read. This module parses exactly that
shape and returns `None` for anything else (multi-segment, other formats, skew, byte offsets,
several data files, ...), in which case the caller uses `wfdb`.

Two entry points, because the two callers need different guarantees:

- `parse_simple_header` + `read_physical` (the cohort builder): lenient about optional header
  fields; the builder decides skips itself and compares samples with wfdb in its tests.
- `read_format16_record` (inference, `signals.readers`): strict. It accepts a record only when
  `wfdb.rdrecord` would read it without error and return the same samples, names, units and rate
  (every field present, ASCII only, base time/date valid, data file long enough, ...). Anything
  unusual — including every *broken* file — returns `None`, so the wfdb path produces the error
  message, exactly as before this reader existed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DEFAULT_GAIN = 200.0  # WFDB: a missing or zero ADC gain means 200 adu per physical unit
INVALID_16 = -32768  # WFDB's "no sample" value for format 16

_RECORD_LINE = re.compile(r"^(?P<name>[^\s/]+)\s+(?P<n_sig>\d+)\s+(?P<fs>[0-9.eE+-]+)\s+(?P<sig_len>\d+)(?:\s.*)?$")
_SIGNAL_LINE = re.compile(
    r"^(?P<file>\S+)\s+(?P<fmt>16)"
    r"\s+(?P<gain>[0-9.eE+-]+)(?:\((?P<baseline>[+-]?\d+)\))?(?:/(?P<units>\S+))?"
    r"(?:\s+(?P<res>\d+)(?:\s+(?P<zero>[+-]?\d+)(?:\s+[+-]?\d+(?:\s+[+-]?\d+(?:\s+\d+(?:\s+(?P<desc>.*))?)?)?)?)?)?\s*$"
)

# Strict grammar (inference): a subset of what wfdb's own header regexes accept, every field present,
# so that a match is read identically by wfdb. Name and file characters follow wfdb's patterns.
_STRICT_RECORD_LINE = re.compile(
    r"^(?P<name>[-\w]+)[ \t]+(?P<n_sig>\d+)[ \t]+(?P<fs>\d+(?:\.\d+)?)[ \t]+(?P<sig_len>\d+)"
    r"(?:[ \t]+(?P<time>\d{1,2}:\d{1,2}:\d{1,2}(?:\.\d{1,6})?)(?:[ \t]+(?P<date>\d{1,2}/\d{1,2}/\d{4}))?)?$"
)
_STRICT_SIGNAL_LINE = re.compile(
    r"^(?P<file>[-\w]+(?:\.\w+)?)[ \t]+16"
    r"[ \t]+(?P<gain>\d+(?:\.\d+)?)(?:\((?P<baseline>-?\d+)\))?(?:/(?P<units>[\w^\-?%/]+))?"
    r"[ \t]+\d+[ \t]+(?P<zero>-?\d+)[ \t]+-?\d+[ \t]+-?\d+[ \t]+0"
    r"[ \t]+(?P<desc>[^\t\n\r\f\v]+)$"
)


@dataclass(frozen=True)
class SimpleHeader:
    """A single-segment header whose signals all live in one format-16 file."""

    fs: float
    sig_len: int
    file_name: str
    sig_names: list[str]
    units: list[str]
    gains: NDArray[np.float64]
    baselines: NDArray[np.float64]

    @property
    def n_sig(self) -> int:
        return len(self.sig_names)

    def data_bytes(self) -> int:
        return 2 * self.n_sig * self.sig_len


def parse_simple_header(path: Path) -> SimpleHeader | None:
    """The header if it has the simple MIMIC shape, else None (use wfdb). Raises OSError if unreadable.

    Lenient (the builder's parser): optional trailing fields may be missing; a missing description
    becomes `ch<n>` so the builder's lead check skips the record by name.
    """
    lines = [line.strip() for line in path.read_text(encoding="latin-1").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return None
    record = _RECORD_LINE.match(lines[0])
    if record is None:
        return None
    n_sig = int(record["n_sig"])
    signal_lines = lines[1 : 1 + n_sig]
    if n_sig == 0 or len(signal_lines) != n_sig:
        return None
    files, names, units, gains, baselines = set(), [], [], [], []
    for index, line in enumerate(signal_lines):
        match = _SIGNAL_LINE.match(line)
        if match is None:
            return None
        files.add(match["file"])
        gain = float(match["gain"])
        gains.append(gain if gain != 0 else DEFAULT_GAIN)
        zero = int(match["zero"]) if match["zero"] is not None else 0
        baselines.append(float(match["baseline"]) if match["baseline"] is not None else float(zero))
        units.append(match["units"] or "mV")
        description = match["desc"]
        names.append(description.strip() if description else f"ch{index + 1}")
    if len(files) != 1:
        return None
    fs = float(record["fs"])
    return SimpleHeader(
        fs=fs,
        sig_len=int(record["sig_len"]),
        file_name=files.pop(),
        sig_names=names,
        units=units,
        gains=np.asarray(gains, dtype=np.float64),
        baselines=np.asarray(baselines, dtype=np.float64),
    )


def read_physical(header: SimpleHeader, data_path: Path, n_samples: int) -> NDArray[np.float64]:
    """First `n_samples` of every signal in physical units, shape (n_sig, n); invalid samples → NaN.

    The arithmetic is wfdb's `dig2phys` (float64: subtract the baseline, divide by the gain), so the
    values are bit-identical to `wfdb.rdrecord(..., physical=True)`.
    """
    digital = np.fromfile(data_path, dtype="<i2", count=n_samples * header.n_sig)
    if digital.size != n_samples * header.n_sig:
        raise EOFError(f"{data_path}: {digital.size} samples, expected {n_samples * header.n_sig}")
    digital = digital.reshape(n_samples, header.n_sig).T
    # One ufunc pass transposes, widens and subtracts into a contiguous (n_sig, n) array (2× faster
    # than astype on the transposed view, then subtract, then divide into new arrays).
    physical = np.empty(digital.shape, dtype=np.float64)
    np.subtract(digital, header.baselines[:, None], out=physical)
    physical /= header.gains[:, None]
    invalid = digital == INVALID_16
    if invalid.any():
        physical[invalid] = np.nan
    return physical


# ---- strict path for inference ----------------------------------------------------------------


def parse_strict_header(text: str) -> SimpleHeader | None:
    """The header when wfdb would read it identically (see the module docstring), else None."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return None
    record = _STRICT_RECORD_LINE.match(lines[0])
    if record is None or not _valid_base_time(record["time"], record["date"]):
        return None
    n_sig, sig_len, fs = int(record["n_sig"]), int(record["sig_len"]), float(record["fs"])
    if n_sig == 0 or sig_len == 0 or fs <= 0 or len(lines) != 1 + n_sig:
        return None
    matches = [_STRICT_SIGNAL_LINE.match(line) for line in lines[1:]]
    if any(match is None for match in matches):
        return None
    signals = [match for match in matches if match is not None]
    files = {match["file"] for match in signals}
    gains = [float(match["gain"]) for match in signals]
    if len(files) != 1 or min(gains) <= 0:
        return None
    return SimpleHeader(
        fs=fs,
        sig_len=sig_len,
        file_name=files.pop(),
        sig_names=[match["desc"] for match in signals],
        units=[match["units"] or "mV" for match in signals],
        gains=np.asarray(gains, dtype=np.float64),
        baselines=np.asarray(
            [float(match["baseline"] if match["baseline"] is not None else match["zero"]) for match in signals],
            dtype=np.float64,
        ),
    )


def read_format16_record(header_path: Path) -> tuple[SimpleHeader, NDArray[np.float64]] | None:
    """(header, physical samples (n_sig, sig_len)) for a strict-shape record, else None (use wfdb).

    None also for every unreadable, missing or short file: the caller's wfdb path then raises its
    usual, specific error. Samples are bit-identical to `wfdb.rdrecord(..., physical=True)`.
    """
    try:
        text = header_path.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    header = parse_strict_header(text)
    if header is None:
        return None
    data_path = header_path.parent / header.file_name
    try:
        if data_path.stat().st_size < header.data_bytes():
            return None
        return header, read_physical(header, data_path, header.sig_len)
    except (OSError, EOFError):
        return None


def _valid_base_time(time: str | None, date: str | None) -> bool:
    """wfdb parses the record line's base time and date and fails on invalid ones: so do we."""
    try:
        if time is not None:
            dt.datetime.strptime(time, "%H:%M:%S.%f" if "." in time else "%H:%M:%S")
        if date is not None:
            dt.datetime.strptime(date, "%d/%m/%Y")
    except ValueError:
        return False
    return True
