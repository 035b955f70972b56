"""Fixtures for the ECG input tests: an analytic 12-lead signal and MIMIC-layout WFDB writing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from ecgkt.mimic.layout import ECG_ADC_GAIN, MIMIC_LEAD_ORDER, wfdb_record_dir
from ecgkt.signals.leads import CANONICAL_LEADS

AnalyticEcg = Callable[..., NDArray[np.float64]]
WfdbWriter = Callable[..., Path]

# Band-limited (< 25 Hz) so any sampling rate ≥ 100 Hz represents the same continuous signal.
_FREQUENCIES_HZ = np.array([1.0, 2.3, 5.1, 11.7, 23.0])
_AMPLITUDES_MV = np.array([0.6, 0.4, 0.25, 0.12, 0.05])


def analytic_ecg_mv(fs: float, seconds: float = 10.0, seed: int = 0) -> NDArray[np.float64]:
    """(12, n) canonical-order signal in mV: a different sum of sines per lead, sampled at `fs`."""
    t = np.arange(round(fs * seconds)) / fs
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, (len(CANONICAL_LEADS), len(_FREQUENCIES_HZ)))
    waves = np.sin(2 * np.pi * _FREQUENCIES_HZ[None, :, None] * t[None, None, :] + phases[:, :, None])
    return (_AMPLITUDES_MV[None, :, None] * waves).sum(axis=1)


@pytest.fixture
def analytic_ecg() -> AnalyticEcg:
    return analytic_ecg_mv


def write_wfdb(
    folder: Path,
    name: str,
    signal_mv: NDArray[np.float64],
    fs: int,
    lead_order: Sequence[str] = MIMIC_LEAD_ORDER,
    units: str = "mV",
) -> Path:
    """Write a record as MIMIC-IV-ECG does (format 16, 200 adu/mV) with leads in `lead_order`."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    scale = 1000.0 if units == "uV" else 1.0
    columns = [signal_mv[CANONICAL_LEADS.index(lead)] * scale for lead in lead_order]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units] * len(lead_order),
        sig_name=list(lead_order),
        p_signal=np.stack(columns, axis=1),
        fmt=["16"] * len(lead_order),
        adc_gain=[ECG_ADC_GAIN / scale] * len(lead_order),
        baseline=[0] * len(lead_order),
        comments=["10000032: N"],
        write_dir=str(folder),
    )
    return folder / name


@pytest.fixture
def mimic_record(tmp_path: Path) -> Path:
    """A 10 s, 500 Hz record at its MIMIC-IV-ECG path, leads in MIMIC order (aVF before aVL)."""
    folder = tmp_path / "mimic-iv-ecg" / wfdb_record_dir(10000032, 40689238)
    return write_wfdb(folder, "40689238", analytic_ecg_mv(500), 500)


@pytest.fixture
def wfdb_writer() -> WfdbWriter:
    return write_wfdb
