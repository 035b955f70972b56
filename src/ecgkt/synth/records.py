"""Rendering and writing the WFDB records of MIMIC-IV-ECG, one worker chunk at a time.

The files are exactly what `wfdb.wrsamp` writes for MIMIC's header fields (a test compares the bytes
with `wfdb.wrsamp` output): 12 signals in MIMIC lead order, 500 Hz, 5000 samples, format 16,
200 adu/mV, baseline 0, units mV, base time and date = the ECG time, comment `<subject_id>: N`,
NaN samples stored as WFDB's invalid value −32768. The header and the `.dat` are produced here
directly because `wfdb.wrsamp` spends ~40 ms per record validating header fields through pandas,
which alone would cap generation below the 100 records/s target on two cores.

This module is imported by worker processes, so it imports only NumPy, the renderer and the
contract — no Polars, no ICD tables.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ecgkt.mimic.layout import (
    ECG_ADC_GAIN,
    ECG_FORMAT,
    ECG_NUM_SAMPLES,
    ECG_SAMPLING_RATE_HZ,
    MIMIC_LEAD_ORDER,
    wfdb_record_dir,
)
from ecgkt.synth.ecg_params import EcgParameters, MachineMeasurements
from ecgkt.synth.streams import record_stream

WFDB_INVALID_16 = -32768  # format-16 sample value meaning "no data" (NaN)
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class RecordJob:
    """One ECG to render: which record, whose, when, and what it should show."""

    index: int  # position in the cohort's ECG list; keys the record's random stream
    subject_id: int
    study_id: int
    ecg_minute: int  # minutes since the epoch (shifted calendar)
    params: EcgParameters

    @property
    def ecg_time(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(minutes=self.ecg_minute)

    @property
    def relative_dir(self) -> str:
        return wfdb_record_dir(self.subject_id, self.study_id)


def to_digital(signal_mv: NDArray[np.floating]) -> NDArray[np.int16]:
    """mV → adu exactly as wfdb's `adc` does (round half to even after ×gain; NaN → −32768)."""
    physical = np.asarray(signal_mv, dtype=np.float64) * ECG_ADC_GAIN
    nan = np.isnan(physical)
    digital = np.round(np.clip(np.nan_to_num(physical, nan=0.0), -32767.0, 32767.0))
    digital[nan] = WFDB_INVALID_16
    return digital.astype(np.int16)


def wfdb_header(record_name: str, digital: NDArray[np.int16], ecg_time: dt.datetime, subject_id: int) -> str:
    """The `.hea` text `wfdb.wrsamp` writes for a MIMIC-IV-ECG record."""
    n_sig, sig_len = digital.shape
    checksums = (digital.astype(np.int64).sum(axis=1) % 65536).tolist()
    first = digital[:, 0].tolist()
    lines = [f"{record_name} {n_sig} {ECG_SAMPLING_RATE_HZ} {sig_len} "
             f"{ecg_time:%H:%M:%S} {ecg_time:%d/%m/%Y}"]
    for name, init, checksum in zip(MIMIC_LEAD_ORDER, first, checksums, strict=True):
        lines.append(f"{record_name}.dat {ECG_FORMAT} {ECG_ADC_GAIN}(0)/mV 16 0 {init} {checksum} 0 {name}")
    lines.append(f"# <subject_id>: {subject_id}")
    return "\n".join(lines) + "\n"


def write_wfdb_record(directory: Path, record_name: str, signal_mv: NDArray[np.floating], subject_id: int,
                      ecg_time: dt.datetime) -> None:
    """Write `<record_name>.hea` and `.dat` into `directory` (created if needed)."""
    if signal_mv.shape != (len(MIMIC_LEAD_ORDER), ECG_NUM_SAMPLES):
        raise ValueError(f"record {record_name}: renderer returned shape {signal_mv.shape}, "
                         f"expected {(len(MIMIC_LEAD_ORDER), ECG_NUM_SAMPLES)}")
    digital = to_digital(signal_mv)
    os.makedirs(directory, exist_ok=True)
    digital.T.astype("<i2").tofile(directory / f"{record_name}.dat")
    (directory / f"{record_name}.hea").write_text(wfdb_header(record_name, digital, ecg_time, subject_id))


def render_and_write(root: str, seed: int, jobs: Sequence[RecordJob]) -> list[tuple[int, MachineMeasurements]]:
    """Worker entry point: render each job with its own stream, write it under `root`."""
    from ecgkt.synth.waveform import render_ecg

    out: list[tuple[int, MachineMeasurements]] = []
    base = Path(root)
    for job in jobs:
        signal, measurements = render_ecg(job.params, record_stream(seed, job.index),
                                          fs=ECG_SAMPLING_RATE_HZ, n_samples=ECG_NUM_SAMPLES)
        write_wfdb_record(base / job.relative_dir, str(job.study_id), signal, job.subject_id, job.ecg_time)
        out.append((job.index, measurements))
    return out
