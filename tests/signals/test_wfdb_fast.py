"""The fast format-16 WFDB path reads exactly what wfdb reads, and declines everything else.

Every comparison is against `wfdb` itself on real files: records written by `wfdb.wrsamp` (several
gains, baselines, units, a NaN sample, other formats) and by the synthetic cohort's MIMIC writer
(the builder's input, with base time, date and comment lines). Hand-edited headers check that every
shape the strict parser does not fully understand goes to wfdb, so errors keep wfdb's wording.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ecgkt.mimic.layout import MIMIC_LEAD_ORDER
from ecgkt.signals import wfdb_record
from ecgkt.signals.readers import EcgInput, EcgInputError, read_ecg
from ecgkt.signals.wfdb_fast import parse_strict_header, read_format16_record
from ecgkt.signals.wfdb_record import read_wfdb_with_wfdb


def _wrsamp(
    folder: Path,
    name: str,
    signal: np.ndarray,
    *,
    fs: float = 500,
    fmt: str = "16",
    gain: float = 200.0,
    baseline: int = 0,
    units: str = "mV",
    names: tuple[str, ...] = MIMIC_LEAD_ORDER,
) -> Path:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units] * len(names),
        sig_name=list(names),
        p_signal=signal.T,
        fmt=[fmt] * len(names),
        adc_gain=[gain] * len(names),
        baseline=[baseline] * len(names),
        comments=["10000032: N"],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def _signal(n: int = 5000, seed: int = 0, nan: bool = False) -> np.ndarray:
    signal = np.random.default_rng(seed).normal(0.0, 0.6, (12, n)).cumsum(axis=1) * 0.05
    if nan:
        signal[3, 1200:1260] = np.nan  # stored as format 16's invalid value −32768
    return signal


def _read_with_wfdb_only(header: Path, monkeypatch: pytest.MonkeyPatch) -> EcgInput:
    with monkeypatch.context() as patch:
        patch.setattr(wfdb_record, "read_format16_record", lambda _path: None)
        return read_ecg(header)


def _assert_same_input(ours: EcgInput, reference: EcgInput) -> None:
    np.testing.assert_array_equal(ours.signal_mv, reference.signal_mv)  # NaN positions included
    assert ours.signal_mv.dtype == reference.signal_mv.dtype == np.float32
    assert (ours.sampling_rate_hz, ours.original_leads, ours.notes) == (
        reference.sampling_rate_hz,
        reference.original_leads,
        reference.notes,
    )


@pytest.mark.parametrize(
    ("gain", "baseline", "units", "fs", "nan"),
    [
        (200.0, 0, "mV", 500, False),  # MIMIC-IV-ECG
        (200.0, 0, "mV", 500, True),
        (1000.0, 25, "mV", 1000, False),
        (32.5, -100, "mV", 500, True),
        (0.2, 7, "uV", 500, False),
    ],
)
def test_fast_path_matches_wfdb_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gain: float, baseline: int, units: str, fs: int, nan: bool
) -> None:
    scale = 1000.0 if units == "uV" else 1.0
    header = _wrsamp(
        tmp_path, "rec", _signal(n=10 * fs, nan=nan) * scale, fs=fs, gain=gain, baseline=baseline, units=units
    )
    fast = read_format16_record(header)
    assert fast is not None, "format 16 written by wrsamp must take the fast path"
    raw = read_wfdb_with_wfdb(header, str(header))
    parsed, samples = fast
    np.testing.assert_array_equal(samples, raw.signal)
    assert np.isnan(samples).any() == nan
    assert tuple(parsed.sig_names) == raw.lead_names and tuple(parsed.units) == raw.declared_units
    assert parsed.fs == raw.sampling_rate_hz
    _assert_same_input(read_ecg(header), _read_with_wfdb_only(header, monkeypatch))


def test_synthetic_mimic_records_take_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cohort's MIMIC writer (base time, date, comment line) — what the builder and demo read."""
    from ecgkt.synth.records import write_wfdb_record

    when = dt.datetime(2180, 11, 20, 8, 47)
    write_wfdb_record(tmp_path, "40689238", _signal(nan=True).astype(np.float32), 10000032, when)
    header = tmp_path / "40689238.hea"
    assert read_format16_record(header) is not None
    _assert_same_input(read_ecg(header), _read_with_wfdb_only(header, monkeypatch))


@pytest.mark.parametrize("fmt", ["212", "80", "24", "32"])
def test_other_formats_go_through_wfdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    header = _wrsamp(tmp_path, "rec", _signal(), fmt=fmt, gain=20.0 if fmt == "80" else 200.0)
    assert read_format16_record(header) is None
    _assert_same_input(read_ecg(header), _read_with_wfdb_only(header, monkeypatch))


def _edit(header: Path, old: str, new: str, count: int = 1) -> Path:
    text = header.read_text()
    assert old in text
    header.write_text(text.replace(old, new, count))
    return header


@pytest.mark.parametrize(
    ("case", "edit"),
    [
        ("no description", lambda h: _edit(h, " 0 V6\n", " 0\n")),
        ("block size", lambda h: _edit(h, " 0 V6\n", " 512 V6\n")),
        ("byte offset", lambda h: _edit(h, "rec.dat 16 ", "rec.dat 16+0 ", 12)),
        ("tab in name", lambda h: _edit(h, " 0 V6\n", " 0 V\t6\n")),
        ("non-ascii name", lambda h: h.write_bytes(h.read_bytes().replace(b" 0 V6\n", b" 0 V6\xb5\n"))),
        ("counter frequency", lambda h: _edit(h, "rec 12 500 5000", "rec 12 500/1000 5000")),
        ("time without seconds", lambda h: _edit(h, "rec 12 500 5000", "rec 12 500 5000 10:00")),
    ],
)
def test_unusual_headers_are_left_to_wfdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, edit: Callable[[Path], object]
) -> None:
    header = _wrsamp(tmp_path, "rec", _signal())
    edit(header)
    assert read_format16_record(header) is None, case
    try:
        expected = _read_with_wfdb_only(header, monkeypatch)
    except EcgInputError as error:
        with pytest.raises(EcgInputError) as raised:
            read_ecg(header)
        assert str(raised.value) == str(error)
    else:
        _assert_same_input(read_ecg(header), expected)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("200.0(0)/mV 16 0", "200.0 16 7"),  # no baseline: the ADC zero is the baseline; no units: mV
        ("200.0(0)/mV 16 0", "200.0(-3) 16 0"),
        ("200.0(0)/mV 16 0", "200.0/uV 16 5"),
    ],
)
def test_optional_gain_fields_are_read_like_wfdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    header = _edit(_wrsamp(tmp_path, "rec", _signal()), old, new, 12)
    fast = read_format16_record(header)
    assert fast is not None
    raw = read_wfdb_with_wfdb(header, "rec")
    np.testing.assert_array_equal(fast[1], raw.signal)
    assert tuple(fast[0].units) == raw.declared_units
    _assert_same_input(read_ecg(header), _read_with_wfdb_only(header, monkeypatch))


def test_base_time_and_date_are_validated_like_wfdb(tmp_path: Path) -> None:
    header = _wrsamp(tmp_path, "rec", _signal())
    _edit(header, "rec 12 500 5000", "rec 12 500 5000 10:00:00.250 28/02/2020")
    assert read_format16_record(header) is not None
    _edit(header, "28/02/2020", "31/02/2020")
    assert read_format16_record(header) is None
    with pytest.raises(EcgInputError, match=r"rec\.hea: unreadable WFDB header \(day is out of range"):
        read_ecg(header)


def test_broken_files_keep_wfdbs_errors(tmp_path: Path) -> None:
    header = _wrsamp(tmp_path, "rec", _signal())
    data = header.with_suffix(".dat")
    content = data.read_bytes()

    data.write_bytes(content[:-24])  # one frame short
    assert read_format16_record(header) is None
    with pytest.raises(EcgInputError, match=r"rec\.hea: corrupt or truncated WFDB signal file"):
        read_ecg(header)

    data.unlink()
    assert read_format16_record(header) is None
    with pytest.raises(EcgInputError, match=r"rec\.hea: WFDB signal file missing \(rec\.dat\)"):
        read_ecg(header)

    data.write_bytes(content)
    _edit(header, "rec 12 500 5000", "rec 13 500 5000")  # declares a 13th signal line it lacks
    assert read_format16_record(header) is None
    with pytest.raises(EcgInputError, match=r"rec\.hea: "):
        read_ecg(header)


def test_longer_data_file_reads_the_declared_samples_like_wfdb(tmp_path: Path) -> None:
    header = _wrsamp(tmp_path, "rec", _signal())
    data = header.with_suffix(".dat")
    data.write_bytes(data.read_bytes() + np.full(12 * 40, 1234, dtype="<i2").tobytes())
    fast = read_format16_record(header)
    assert fast is not None and fast[1].shape == (12, 5000)
    np.testing.assert_array_equal(fast[1], read_wfdb_with_wfdb(header, "rec").signal)


def test_record_and_data_file_names_may_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header names its data file; the record name on line 1 does not have to match (wfdb agrees)."""
    header = _wrsamp(tmp_path / "a", "rec", _signal())
    target = tmp_path / "b"
    target.mkdir()
    shutil.copy(header.with_suffix(".dat"), target / "samples.dat")
    (target / "copy.hea").write_text(header.read_text().replace("rec.dat", "samples.dat"))
    assert read_format16_record(target / "copy.hea") is not None
    _assert_same_input(read_ecg(target / "copy.hea"), _read_with_wfdb_only(target / "copy.hea", monkeypatch))


def test_strict_parser_rejects_what_it_cannot_vouch_for() -> None:
    line = "rec.dat 16 200.0(0)/mV 16 0 0 0 0 I"
    assert parse_strict_header(f"rec 1 500 10\n{line}\n") is not None
    assert parse_strict_header(f"rec 1 0 10\n{line}\n") is None  # no sampling rate
    assert parse_strict_header(f"rec 1 500 0\n{line}\n") is None  # length not declared
    assert parse_strict_header(f"rec 1 500 10\n{line.replace('200.0(0)', '0(0)')}\n") is None  # default gain
    two_files = f"rec 2 500 10\n{line}\n{line.replace('rec.dat', 'other.dat')}\n"
    assert parse_strict_header(two_files) is None
    assert parse_strict_header("rec/2 2 500 10\nseg1 5\nseg2 5\n") is None  # multi-segment
    assert parse_strict_header("# only a comment\n") is None
