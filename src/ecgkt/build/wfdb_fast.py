"""A fast reader for the one WFDB shape MIMIC-IV-ECG uses; everything else goes through `wfdb`.

Why: with pandas 3, `wfdb.rdheader` spends ~30 ms per header in pandas scalar look-ups
(`SIGNAL_SPECS.loc[...]` for every field of every signal line), which caps ingestion far below
the 300 records/s target. MIMIC records are a single-segment header and one format-16 `.dat`
holding all signals interleaved, which the WFDB header specification (physionet.org/physiotools/
wag/header-5.htm) makes simple to read: this module parses exactly that shape and returns `None`
for anything else (multi-segment, other formats, skew, byte offsets, several data files, ...), in
which case the caller uses `wfdb.rdrecord`. Tests check the two paths give identical samples.
"""

from __future__ import annotations

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
    """The header if it has the simple MIMIC shape, else None (use wfdb). Raises OSError if unreadable."""
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
    """First `n_samples` of every signal in physical units, shape (n_sig, n); invalid samples → NaN."""
    digital = np.fromfile(data_path, dtype="<i2", count=n_samples * header.n_sig)
    if digital.size != n_samples * header.n_sig:
        raise EOFError(f"{data_path}: {digital.size} samples, expected {n_samples * header.n_sig}")
    digital = digital.reshape(n_samples, header.n_sig).T
    physical = (digital.astype(np.float64) - header.baselines[:, None]) / header.gains[:, None]
    physical[digital == INVALID_16] = np.nan
    return physical
