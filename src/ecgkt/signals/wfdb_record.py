"""WFDB records → `RawEcg`: the fast format-16 reader when it applies, else the `wfdb` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgkt.signals.assembly import RawEcg
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.limits import MAX_SAMPLES_PER_LEAD, MAX_SIGNALS
from ecgkt.signals.wfdb_fast import read_format16_record
from ecgkt.signals.wfdb_header import tokenise_header

__all__ = ["names_wfdb_record", "read_wfdb", "read_wfdb_with_wfdb", "wfdb_header_path"]


def wfdb_header_path(path: Path) -> Path | None:
    """The header a path names: `rec.hea`, `rec.dat` → `rec.hea`; `rec` → `rec.hea` if it exists.

    A `.hea`/`.dat` path always names a WFDB record (even when missing, so the error says so).
    """
    if path.suffix.lower() in (".hea", ".dat"):
        return path.with_suffix(".hea")
    header = Path(f"{path}.hea")
    return header if header.is_file() else None


def names_wfdb_record(path: Path) -> bool:
    header = wfdb_header_path(path)
    return header is not None and header.is_file()


def read_wfdb(header_path: Path, source: str) -> RawEcg:
    """A WFDB record: the fast format-16 reader when it applies, else `wfdb` (which also words every error).

    `read_format16_record` accepts only records that wfdb reads identically (samples bit for bit,
    names, units, rate; tested on files written by `wfdb.wrsamp`), and declines every broken file,
    so errors keep coming from `read_wfdb_with_wfdb`.
    """
    fast = read_format16_record(header_path)
    if fast is None:
        return read_wfdb_with_wfdb(header_path, source)
    header, signal = fast
    return RawEcg(
        source=source,
        signal=signal,
        sampling_rate_hz=header.fs,
        lead_names=tuple(header.sig_names),
        declared_units=tuple(header.units),
        units_origin="WFDB header",
    )


def _check_declared_size(header_path: Path, source: str) -> None:
    """Refuse a header that declares more signals or samples than ecgkt reads, before wfdb allocates them."""
    try:
        tokens = tokenise_header(header_path.read_text(encoding="latin-1"))
    except OSError:
        return  # wfdb words the error
    if tokens is None:
        return
    record = tokens.record.tokens
    n_sig = int(record[1]) if len(record) > 1 and record[1].isdigit() else 0
    sig_len = int(record[3]) if len(record) > 3 and record[3].isdigit() else 0
    if n_sig > MAX_SIGNALS or sig_len > MAX_SAMPLES_PER_LEAD:
        raise EcgInputError(
            source,
            f"WFDB header declares {n_sig} signals × {sig_len} samples; at most {MAX_SIGNALS} signals and "
            f"{MAX_SAMPLES_PER_LEAD} samples per signal are read",
        )


def read_wfdb_with_wfdb(header_path: Path, source: str) -> RawEcg:
    """The reference WFDB reader (any format wfdb supports); ~7-15 ms of pandas look-ups per header."""
    import wfdb  # heavy import kept local: the CLI imports this module for --help

    base = header_path.with_suffix("")
    if not header_path.exists():
        raise EcgInputError(source, f"no such file (WFDB header {header_path.name} not found)")
    _check_declared_size(header_path, source)
    try:
        header = wfdb.rdheader(str(base))
    except Exception as error:  # wfdb raises many types for malformed headers
        raise EcgInputError(source, f"unreadable WFDB header ({error})") from None
    if not header.n_sig:
        raise EcgInputError(source, "WFDB header declares no signals")
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except FileNotFoundError as error:
        raise EcgInputError(source, f"WFDB signal file missing ({Path(str(error.filename)).name})") from None
    except Exception as error:
        raise EcgInputError(source, f"corrupt or truncated WFDB signal file ({error})") from None
    if record.p_signal is None:
        raise EcgInputError(source, "WFDB record holds no physical signal")
    signal = np.asarray(record.p_signal, dtype=np.float64).T
    if header.sig_len and signal.shape[1] != header.sig_len:
        raise EcgInputError(
            source, f"truncated WFDB signal file: {signal.shape[1]} of {header.sig_len} samples per lead"
        )
    units = tuple((u or None) for u in (record.units or [None] * signal.shape[0]))
    return RawEcg(
        source=source,
        signal=signal,
        sampling_rate_hz=float(record.fs) if record.fs else None,
        lead_names=tuple(str(name) for name in record.sig_name),
        declared_units=units,
        units_origin="WFDB header",
    )
