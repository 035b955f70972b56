"""Golden round trips: a synthetic record written as MIMIC WFDB, converted to each format by the
independent writers, read back by the readers: the same signal to the format's resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgkt.convert.writers import WRITERS, WriteOptions
from ecgkt.signals.formats import detect_format
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import read_ecg
from ecgkt.synth.ecg_params import EcgParameters
from ecgkt.synth.waveform import render_ecg

SUFFIX = {"ge-muse": ".xml", "ge-cardiosoft": ".xml", "philips": ".xml", "hl7-aecg": ".xml", "scp-ecg": ".scp",
          "edf": ".edf"}


def wfdb_original(tmp_path: Path, fs: int) -> tuple[np.ndarray, Path]:
    """A synthetic 10 s record (generator output) written MIMIC style and read back: the reference."""
    signal, _ = render_ecg(EcgParameters(heart_rate_bpm=80), np.random.default_rng(fs), fs=fs, n_samples=10 * fs)
    mimic = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
    canonical = np.stack([signal[mimic.index(lead)] for lead in CANONICAL_LEADS], axis=1).astype(np.float64)
    WRITERS["wfdb"](tmp_path / "orig", canonical, CANONICAL_LEADS, float(fs))
    original = read_ecg(tmp_path / "orig.hea")
    return original.signal_mv.T.astype(np.float64), tmp_path / "orig.hea"


CASES = [
    # (format, fs, options, tolerance in mV)
    # 8 stored leads: derived III/aVR/aVL/aVF carry 1.5 MUSE LSB, and the WFDB original's own 5 µV
    # quantisation already breaks Einthoven's law by up to 1.5 × 2.5 µV.
    ("ge-muse", 500, WriteOptions(uv_per_lsb=4.88, muse_leads=8), 1.5 * 4.88e-3 + 1.5 * 2.5e-3 + 1e-6),
    ("ge-muse", 250, WriteOptions(uv_per_lsb=1.0, muse_leads=12, muse_median_block=False), 0.5e-3 + 1e-6),
    ("ge-muse", 1000, WriteOptions(uv_per_lsb=4.88, muse_leads=12), 0.5 * 4.88e-3 + 1e-6),
    ("hl7-aecg", 500, WriteOptions(uv_per_lsb=5.0, amplitude_unit="uV"), 2.5e-3 + 1e-6),
    ("hl7-aecg", 1000, WriteOptions(uv_per_lsb=1.0, amplitude_unit="mV"), 0.5e-3 + 1e-6),
    ("edf", 500, WriteOptions(uv_per_lsb=1.0), 0.5e-3 + 1e-5),
    ("edf", 250, WriteOptions(uv_per_lsb=4.88), 0.5 * 4.88e-3 + 1e-5),
    ("ge-cardiosoft", 500, WriteOptions(uv_per_lsb=5.0), 2.5e-3 + 1e-6),
    ("philips", 500, WriteOptions(uv_per_lsb=5.0), 2.5e-3 + 1e-6),
    ("scp-ecg", 500, WriteOptions(uv_per_lsb=5.0, scp_difference=2), 2.5e-3 + 1e-6),
    ("scp-ecg", 1000, WriteOptions(uv_per_lsb=1.0, scp_difference=0), 0.5e-3 + 1e-6),
    ("scp-ecg", 250, WriteOptions(uv_per_lsb=2.5, scp_difference=1), 1.25e-3 + 1e-6),
]


@pytest.mark.parametrize(("fmt", "fs", "options", "tolerance"), CASES, ids=lambda v: str(v)[:24])
def test_reader_returns_the_wfdb_original(tmp_path: Path, fmt: str, fs: int, options: WriteOptions,
                                          tolerance: float) -> None:
    original, _ = wfdb_original(tmp_path, fs)
    path = tmp_path / f"converted{SUFFIX[fmt]}"
    WRITERS[fmt](path, original, CANONICAL_LEADS, float(fs), options)
    assert detect_format(path) == fmt
    ecg = read_ecg(path)
    assert ecg.sampling_rate_hz == fs
    assert ecg.signal_mv.shape == (12, 10 * fs)
    error = np.abs(ecg.signal_mv.T.astype(np.float64) - original).max()
    assert error <= tolerance, f"{fmt} at {fs} Hz: max |error| {error:.5f} mV > {tolerance:.5f}"


def test_convert_cli_any_format_to_wfdb_and_back(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgkt.cli import app

    original, header = wfdb_original(tmp_path, 500)
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(header), "--to", "ge-muse", "--out", str(tmp_path / "muse")])
    assert result.exit_code == 0, result.output
    muse = tmp_path / "muse" / "orig.xml"
    result = runner.invoke(app, ["convert", str(muse), "--to", "wfdb", "--out", str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    back = read_ecg(tmp_path / "back" / "orig.hea")
    # 4.88 µV MUSE quantisation (1.5 LSB on derived leads) + 5 µV WFDB quantisation.
    assert np.abs(back.signal_mv.T - original).max() <= 1.5 * 4.88e-3 + 1.5 * 2.5e-3 + 2.5e-3 + 1e-6
    bad = tmp_path / "bad.xml"
    bad.write_text("<html/>")
    result = runner.invoke(app, ["convert", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "bad.xml" in result.output and "unknown kind" in result.output
    assert not (tmp_path / "x").exists()  # no partial output
