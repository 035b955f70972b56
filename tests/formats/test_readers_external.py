"""Readers on files written outside ecgkt: hand-built from the format layouts and other projects' examples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ecgkt.signals.formats import detect_format, read_format
from ecgkt.signals.readers import read_ecg

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"
AMP = [100, 150, 50, -125, 25, 100, 60, 300, 500, 700, 600, 400]
TWELVE = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def expected_counts(k: int, n: int, fs: float) -> np.ndarray:
    return np.array([round(AMP[k] * math.sin(2 * math.pi * 1.5 * i / fs)) for i in range(n)], dtype=float)


def test_muse_8_leads_at_250_hz_derives_limb_leads() -> None:
    path = DATA / "muse_8lead_250hz.xml"
    assert detect_format(path) == "ge-muse"
    record = read_format(path)
    assert record.sampling_rate_hz == 250.0
    assert record.leads[:8] == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    assert set(record.leads[8:]) == {"III", "aVR", "aVL", "aVF"}
    assert any("derived from I and II" in note for note in record.notes)
    lead_i = expected_counts(0, 2500, 250) * 1e-3  # 1 µV per bit
    lead_ii = expected_counts(1, 2500, 250) * 1e-3
    np.testing.assert_allclose(record.signal_mv[:, 0], lead_i)
    np.testing.assert_allclose(record.signal_mv[:, record.leads.index("III")], lead_ii - lead_i)
    np.testing.assert_allclose(record.signal_mv[:, record.leads.index("aVF")], lead_ii - lead_i / 2)
    assert record.measurements["qtc_ms"] == 440.0
    ecg = read_ecg(path)  # through the shared assembly used by predict/report/serve
    assert ecg.signal_mv.shape == (12, 2500)
    np.testing.assert_allclose(ecg.signal_mv[6], expected_counts(6, 2500, 250) * 1e-3, atol=1e-6)


def test_aecg_1000_hz_with_origin_and_millivolt_scale() -> None:
    path = DATA / "aecg_12lead_1000hz.xml"
    assert detect_format(path) == "hl7-aecg"
    record = read_format(path)
    assert record.sampling_rate_hz == 1000.0
    assert record.leads == tuple(TWELVE)
    for k in range(12):
        np.testing.assert_allclose(record.signal_mv[:, k], 0.01 + 0.001 * expected_counts(k, 2600, 1000), atol=1e-12)
    assert read_ecg(path).signal_mv.shape == (12, 2600)


def test_cardiosoft_strip_data_at_5_uv_per_lsb() -> None:
    path = DATA / "cardiosoft_12lead_500hz.xml"
    assert detect_format(path) == "ge-cardiosoft"
    record = read_format(path)
    assert record.sampling_rate_hz == 500.0
    np.testing.assert_allclose(record.signal_mv[:, 9], expected_counts(9, 1500, 500) * 0.005, atol=1e-12)


def test_scp_hand_built_8_leads_first_difference() -> None:
    path = DATA / "scp_8lead_250hz_diff1.scp"
    assert detect_format(path) == "scp-ecg"
    record = read_format(path)
    assert record.sampling_rate_hz == 250.0
    assert record.leads[:8] == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    for k, name in enumerate(record.leads[:8]):
        np.testing.assert_allclose(record.signal_mv[:, k], expected_counts(TWELVE.index(name), 750, 250) * 2.5e-3)
    lead_i, lead_ii = record.signal_mv[:, 0], record.signal_mv[:, 1]
    np.testing.assert_allclose(record.signal_mv[:, record.leads.index("aVR")], -(lead_i + lead_ii) / 2)
    assert read_ecg(path).signal_mv.shape == (12, 750)


def test_philips_xli_example_matches_the_reference_decoder_values() -> None:
    """sierra-ecg-tools' own test asserts these integer values at sample 2750 of this file."""
    path = DATA / "external" / "philips_sierra_3191723_1-04.xml"
    assert detect_format(path) == "philips"  # UTF-16 with BOM, default namespace
    record = read_format(path)
    assert record.sampling_rate_hz == 500.0
    # 11 s declared: 10.6 s of ECG, then a 0.4 s 1 mV calibration pulse on every lead, which is cut.
    assert record.signal_mv.shape == (5300, 12)
    assert any("calibration" in note for note in record.notes)
    assert record.leads == tuple(TWELVE)
    midpoints = np.round(record.signal_mv[2750] / 0.005).astype(int)  # 5 µV per LSB
    assert midpoints.tolist() == [-11, -54, -43, 33, 16, -50, 7, -4, -14, -41, -35, -33]
    # After reconstruction Einthoven's law holds to rounding on the whole record.
    np.testing.assert_allclose(record.signal_mv[:, 2], record.signal_mv[:, 1] - record.signal_mv[:, 0], atol=0.011)
    ecg = read_ecg(path)
    assert ecg.duration_s == pytest.approx(10.6)


def test_edf_example_from_pyedflib() -> None:
    """An EDF+ written by EDFlib's generator (not an ECG: one EEG channel, 128 Hz, µV)."""
    from ecgkt.signals.formats.edf import read_edf

    path = DATA / "external" / "pyedflib_test_subsecond.edf"
    assert detect_format(path) == "edf"
    record = read_edf(path, ecg_leads_only=False)
    assert record.leads == ("Fp1",)
    assert record.sampling_rate_hz == 128.0
    assert record.signal_mv.shape[0] == 698 * 128
    assert np.abs(record.signal_mv).max() < 1.0  # µV → mV applied (EEG amplitudes are tens of µV)
    with pytest.raises(ValueError, match="no ECG lead channel"):
        read_format(path)  # as an ECG it has no leads: a clear error, not a guess
