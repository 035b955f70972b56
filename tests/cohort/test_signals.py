"""WFDB ingestion: leads by name, resampling, skips and repairs, chunked writing with markers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from tiny_mimic import EcgSpec, lead_amplitudes, write_ecg

from ecgkt.cohort.signals import OK, ingest_signals, read_record

WHEN = datetime(2180, 1, 1, 9, 0)


def _record(tmp_path: Path, study: int = 40000001, **kwargs: object) -> tuple[Path, EcgSpec]:
    spec = EcgSpec(10000032, study, WHEN, **kwargs)  # type: ignore[arg-type]
    return write_ecg(tmp_path, spec, lead_amplitudes()), spec


def _peak(signal: np.ndarray) -> np.ndarray:
    return np.abs(signal).max(axis=1)


def test_leads_are_selected_by_name_not_position(tmp_path: Path) -> None:
    base, _ = _record(tmp_path)  # MIMIC order: aVF before aVL
    result = read_record(base)
    assert result.status == OK and result.signal is not None
    assert result.signal.shape == (12, 1000) and result.signal.dtype == np.float32
    peaks = _peak(result.signal)
    # canonical lead i was written with amplitude 0.1·(i+1): the peak order must be increasing
    assert np.all(np.diff(peaks) > 0), peaks
    assert result.repairs == []


@pytest.mark.parametrize("fs", [250.0, 1000.0, 360.0])
def test_other_sampling_rates_are_resampled(tmp_path: Path, fs: float) -> None:
    base, _ = _record(tmp_path, fs=fs)
    result = read_record(base)
    reference = read_record(_record(tmp_path / "ref")[0]).signal  # same study id: same waveform
    assert result.signal is not None and reference is not None
    assert result.signal.shape == (12, 1000)
    assert "signal.resampled" in result.repairs
    assert np.abs(result.signal - reference)[:, 50:-50].max() < 0.05


def test_short_records_are_skipped_and_long_records_cut(tmp_path: Path) -> None:
    short = read_record(_record(tmp_path, study=40000003, seconds=8.0)[0])
    assert short.status == "signal.too_short" and short.signal is None
    long = read_record(_record(tmp_path, study=40000004, seconds=12.0)[0])
    assert long.status == OK and "signal.longer_than_10s" in long.repairs


def test_nan_stretches_are_interpolated_and_flat_leads_counted(tmp_path: Path) -> None:
    nan = read_record(_record(tmp_path, study=40000005, nan_stretch=True)[0])
    assert nan.signal is not None and np.isfinite(nan.signal).all()
    assert "signal.nan_interpolated" in nan.repairs
    flat = read_record(_record(tmp_path, study=40000006, flat_lead="V3")[0])
    assert flat.status == OK and "signal.flat_lead" in flat.repairs
    assert flat.signal is not None and np.abs(flat.signal[8]).max() < 1e-6
    dead = read_record(_record(tmp_path, study=40000007, all_flat=True)[0])
    assert dead.status == "signal.all_leads_flat"


def test_other_lead_names_are_skipped(tmp_path: Path) -> None:
    names = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "X7")
    result = read_record(_record(tmp_path, sig_names=names)[0])
    assert result.status == "signal.bad_leads" and "V6" in result.detail


def test_vendor_lead_spellings_are_accepted(tmp_path: Path) -> None:
    names = ("i", "ii", "iii", "AVR", "AVF", "AVL", "v1", "v2", "v3", "v4", "v5", "v6")
    result = read_record(_record(tmp_path, sig_names=names)[0])
    assert result.status == OK


def test_missing_and_truncated_files_are_skipped(tmp_path: Path) -> None:
    base, _ = _record(tmp_path)
    dat = base.parent / f"{base.name}.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    truncated = read_record(base)
    assert truncated.status == "signal.truncated_dat" and str(dat) in truncated.detail
    dat.unlink()
    assert read_record(base).status == "signal.missing_file"
    assert read_record(tmp_path / "nowhere" / "123").status == "signal.missing_file"
    header = base.parent / f"{base.name}.hea"
    header.write_text("this is not a header\n")
    assert read_record(base).status == "signal.unreadable"


def test_chunked_ingestion_writes_rows_and_markers(tmp_path: Path) -> None:
    bases, labels = [], []
    for k in range(5):
        base, spec = _record(tmp_path / "ecg", study=40000100 + k, seconds=8.0 if k == 3 else 10.0)
        bases.append(str(base))
        labels.append(spec.rel_path)
    out = np.lib.format.open_memmap(tmp_path / "signals.npy", mode="w+", dtype=np.float32, shape=(5, 12, 1000))
    del out
    markers = ingest_signals(bases, labels, tmp_path / "signals.npy", tmp_path / "state", chunk_records=2, workers=1)
    statuses = [s for m in markers for s in m["statuses"]]  # type: ignore[attr-defined]
    assert statuses == [OK, OK, OK, "signal.too_short", OK]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [f"chunk_00000{i}.json" for i in range(3)]
    array = np.load(tmp_path / "signals.npy")
    assert np.abs(array[3]).max() == 0.0 and np.abs(array[4]).max() > 0.1
    np.testing.assert_array_equal(array[0], read_record(Path(bases[0])).signal)


def test_fast_reader_matches_wfdb_samples(tmp_path: Path) -> None:
    import wfdb

    from ecgkt.signals.wfdb_fast import parse_simple_header, read_physical

    base, _ = _record(tmp_path, nan_stretch=True)
    header = parse_simple_header(base.parent / f"{base.name}.hea")
    assert header is not None and header.sig_names[4] == "aVF"
    ours = read_physical(header, base.parent / header.file_name, 5000)
    reference = wfdb.rdrecord(str(base)).p_signal.T
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_array_equal(np.nan_to_num(ours), np.nan_to_num(reference))


def test_other_wfdb_formats_go_through_wfdb(tmp_path: Path) -> None:
    import wfdb

    from ecgkt.signals.wfdb_fast import parse_simple_header

    spec = EcgSpec(10000032, 40000009, WHEN)
    folder = tmp_path / "fmt212"
    folder.mkdir()
    from tiny_mimic import ecg_signal

    signal = ecg_signal(spec, lead_amplitudes())
    names = list(spec.sig_names)
    wfdb.wrsamp(
        "40000009",
        fs=500,
        units=["mV"] * 12,
        sig_name=names,
        p_signal=signal,
        fmt=["212"] * 12,
        adc_gain=[200.0] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )
    base = folder / "40000009"
    assert parse_simple_header(base.parent / "40000009.hea") is None  # not the simple shape
    fallback = read_record(base)
    reference = read_record(_record(tmp_path / "fmt16", study=40000009)[0])
    assert fallback.status == OK and fallback.signal is not None and reference.signal is not None
    np.testing.assert_allclose(fallback.signal, reference.signal, atol=1e-5)


def test_microvolt_records_are_converted(tmp_path: Path) -> None:
    import wfdb
    from tiny_mimic import ecg_signal

    spec = EcgSpec(10000032, 40000011, WHEN)
    folder = tmp_path / "uv"
    folder.mkdir()
    wfdb.wrsamp(
        "40000011",
        fs=500,
        units=["uV"] * 12,
        sig_name=list(spec.sig_names),
        p_signal=1000.0 * ecg_signal(spec, lead_amplitudes()),
        fmt=["16"] * 12,
        adc_gain=[0.2] * 12,
        baseline=[0] * 12,
        write_dir=str(folder),
    )
    result = read_record(folder / "40000011")
    reference = read_record(_record(tmp_path / "mv", study=40000011)[0])
    assert result.signal is not None and reference.signal is not None
    assert "signal.microvolt_units" in result.repairs
    np.testing.assert_allclose(result.signal, reference.signal, atol=1e-4)
