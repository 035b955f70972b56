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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ecgkt.signals.wfdb_header import DEFAULT_GAIN, WfdbFields, lenient, strict, tokenise_header

__all__ = [
    "DEFAULT_GAIN",
    "INVALID_16",
    "SimpleHeader",
    "parse_simple_header",
    "parse_strict_header",
    "read_format16_record",
    "read_physical",
]

INVALID_16 = -32768  # WFDB's "no sample" value for format 16


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

    Lenient (the builder's policy, `wfdb_header.lenient`): optional trailing fields may be missing; a
    missing description becomes `ch<n>` so the builder's lead check skips the record by name.
    """
    return _simple(lenient(tokenise_header(path.read_text(encoding="latin-1"))))


def _simple(fields: WfdbFields | None) -> SimpleHeader | None:
    if fields is None:
        return None
    return SimpleHeader(
        fs=fields.fs,
        sig_len=fields.sig_len,
        file_name=fields.file_name,
        sig_names=fields.sig_names,
        units=fields.units,
        gains=np.asarray(fields.gains, dtype=np.float64),
        baselines=np.asarray(fields.baselines, dtype=np.float64),
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
    """The header when wfdb would read it identically (`wfdb_header.strict`), else None."""
    return _simple(strict(text))


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
