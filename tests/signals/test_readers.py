"""ECG readers: every format, lead order by name, units, sampling rates, lengths, and each bad input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import (
    EcgInput,
    EcgInputError,
    iter_inputs,
    prepare_windows,
    read_ecg,
    read_ecg_array,
)

QUANTUM_MV = 1 / 200  # MIMIC's 200 adu/mV


def dicom_path() -> Path:
    return Path(get_testdata_file("waveform_ecg.dcm"))


# ---- WFDB -------------------------------------------------------------------------------------


def test_wfdb_mimic_layout_is_reordered_by_name(mimic_record: Path, analytic_ecg) -> None:
    ecg = read_ecg(mimic_record)
    assert ecg.signal_mv.shape == (12, 5000)
    assert ecg.sampling_rate_hz == 500
    assert ecg.original_leads[4:6] == ("aVF", "aVL")
    # Row 4 must be aVL although the file stores aVF in that position.
    np.testing.assert_allclose(ecg.signal_mv, analytic_ecg(500), atol=QUANTUM_MV)
    assert any("reordered" in note for note in ecg.notes)
    assert any("resampled 500→100 Hz" in note for note in ecg.notes)


def test_wfdb_path_with_or_without_extension(mimic_record: Path) -> None:
    reference = read_ecg(mimic_record).signal_mv
    for variant in (mimic_record.with_suffix(".hea"), mimic_record.with_suffix(".dat"), str(mimic_record)):
        np.testing.assert_array_equal(read_ecg(variant).signal_mv, reference)


def test_reordering_the_input_leads_gives_identical_windows(
    tmp_path: Path, analytic_ecg, wfdb_writer
) -> None:
    signal = analytic_ecg(500)
    canonical = wfdb_writer(tmp_path / "a", "canon", signal, 500, lead_order=CANONICAL_LEADS)
    mimic = wfdb_writer(tmp_path / "b", "mimic", signal, 500)
    shuffled_order = [CANONICAL_LEADS[i] for i in np.random.default_rng(3).permutation(12)]
    shuffled = wfdb_writer(tmp_path / "c", "shuffled", signal, 500, lead_order=shuffled_order)
    assert not any("reordered" in note for note in read_ecg(canonical).notes)
    reference = prepare_windows(read_ecg(canonical))
    assert reference.shape == (4, 12, 250)
    np.testing.assert_array_equal(prepare_windows(read_ecg(mimic)), reference)
    np.testing.assert_array_equal(prepare_windows(read_ecg(shuffled)), reference)


def test_wfdb_microvolt_header_matches_millivolt(tmp_path: Path, analytic_ecg, wfdb_writer) -> None:
    signal = analytic_ecg(500)
    in_mv = read_ecg(wfdb_writer(tmp_path / "mv", "r", signal, 500))
    in_uv = read_ecg(wfdb_writer(tmp_path / "uv", "r", signal, 500, units="uV"))
    assert any("µV→mV (declared in the WFDB header)" in note for note in in_uv.notes)
    np.testing.assert_allclose(prepare_windows(in_uv), prepare_windows(in_mv), atol=1e-6)


def test_wfdb_nan_samples_are_filled_and_counted(tmp_path: Path, analytic_ecg, wfdb_writer) -> None:
    signal = analytic_ecg(500)
    signal[2, 1000:1120] = np.nan  # wfdb stores NaN as the format's invalid-sample value
    ecg = read_ecg(wfdb_writer(tmp_path, "gap", signal, 500))
    assert int(np.isnan(ecg.signal_mv).sum()) == 120
    assert "filled 120 NaN samples by linear interpolation" in ecg.notes
    windows = prepare_windows(ecg)
    assert np.isfinite(windows).all()


# ---- DICOM (real 12-lead file shipped with pydicom) --------------------------------------------


def test_real_dicom_12_lead_rhythm_group() -> None:
    ecg = read_ecg(dicom_path())
    assert ecg.sampling_rate_hz == 1000
    assert ecg.signal_mv.shape == (12, 10000)  # the 10 s RHYTHM group, not the 1.2 s MEDIAN BEAT
    assert ecg.original_leads[0] == "Lead I (Einthoven)"
    assert any("RHYTHM" in note for note in ecg.notes)
    assert any("µV→mV" in note for note in ecg.notes)
    # µV converted to mV: a real ECG peaks around 1–2 mV.
    assert 0.5 < np.abs(ecg.signal_mv).max() < 3.0
    # Leads were mapped by name: Einthoven and Goldberger identities hold to the file's 1.25 µV step.
    lead = {name: ecg.signal_mv[i] for i, name in enumerate(CANONICAL_LEADS)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-3)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-3)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-3)
    assert prepare_windows(ecg).shape == (4, 12, 250)


def test_dicom_lead_names_fall_back_to_scp_ecg_codes(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(dicom_path())
    channels = dataset.WaveformSequence[0].ChannelDefinitionSequence
    for channel in channels:
        channel.ChannelSourceSequence[0].CodeMeaning = "unlabelled"
    # Swap two channels' codes: the reader must follow the codes, not the positions.
    first, second = channels[4].ChannelSourceSequence[0], channels[5].ChannelSourceSequence[0]
    first.CodeValue, second.CodeValue = second.CodeValue, first.CodeValue
    path = tmp_path / "coded.dcm"
    dataset.save_as(path)
    reference = read_ecg(dicom_path()).signal_mv
    coded = read_ecg(path).signal_mv
    np.testing.assert_array_equal(
        coded[[0, 1, 2, 3, 6, 7, 8, 9, 10, 11]], reference[[0, 1, 2, 3, 6, 7, 8, 9, 10, 11]]
    )
    np.testing.assert_array_equal(coded[4], reference[5])  # the channel coded aVL is read as aVL
    np.testing.assert_array_equal(coded[5], reference[4])


def test_dicom_without_waveform_is_rejected(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(dicom_path())
    del dataset.WaveformSequence
    path = tmp_path / "image_like.dcm"
    dataset.save_as(path)
    with pytest.raises(EcgInputError, match=r"image_like\.dcm: DICOM file contains no waveform"):
        read_ecg(path)


def test_dicom_with_truncated_waveform_data_is_rejected(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(dicom_path())
    group = dataset.WaveformSequence[0]
    group.WaveformData = group.WaveformData[: len(group.WaveformData) // 3]
    path = tmp_path / "truncated.dcm"
    dataset.save_as(path)
    with pytest.raises(EcgInputError, match=r"truncated\.dcm: corrupt DICOM waveform data"):
        read_ecg(path)


def test_non_dicom_file_with_dcm_extension(tmp_path: Path) -> None:
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"this is not dicom" * 20)
    with pytest.raises(EcgInputError, match=r"fake\.dcm: not a DICOM file"):
        read_ecg(path)


# ---- NumPy ------------------------------------------------------------------------------------


def test_npy_with_sidecar_in_either_orientation(tmp_path: Path, analytic_ecg) -> None:
    signal = analytic_ecg(250)
    mimic_order = ["I", "II", "III", "aVR", "aVF", "aVL", *(f"V{i}" for i in range(1, 7))]
    stored = signal[[CANONICAL_LEADS.index(name) for name in mimic_order]]
    np.save(tmp_path / "leads_first.npy", stored.astype(np.float32))
    np.save(tmp_path / "samples_first.npy", stored.T.copy())
    sidecar = {"sampling_rate_hz": 250, "leads": mimic_order, "units": "mV"}
    (tmp_path / "leads_first.npy.json").write_text(json.dumps(sidecar))
    (tmp_path / "samples_first.json").write_text(json.dumps(sidecar))
    first = read_ecg(tmp_path / "leads_first.npy")
    second = read_ecg(tmp_path / "samples_first.npy")
    np.testing.assert_allclose(first.signal_mv, signal, atol=1e-6)
    np.testing.assert_allclose(second.signal_mv, first.signal_mv, atol=1e-6)
    assert first.sampling_rate_hz == 250


def test_npy_arguments_and_default_lead_order(tmp_path: Path, analytic_ecg) -> None:
    signal = analytic_ecg(500)
    np.save(tmp_path / "plain.npy", signal)
    with pytest.raises(EcgInputError, match=r"plain\.npy: sampling rate unknown"):
        read_ecg(tmp_path / "plain.npy")
    (tmp_path / "plain.json").write_text('{"sampling_rate_hz": "fast"}')
    with pytest.raises(EcgInputError, match=r"plain\.npy: sidecar sampling_rate_hz must be a number"):
        read_ecg(tmp_path / "plain.npy")
    (tmp_path / "plain.json").write_text("{not json")
    with pytest.raises(EcgInputError, match=r"plain\.npy: unreadable sidecar plain\.json"):
        read_ecg(tmp_path / "plain.npy")
    (tmp_path / "plain.json").unlink()
    ecg = read_ecg(tmp_path / "plain.npy", sampling_rate_hz=500)
    np.testing.assert_allclose(ecg.signal_mv, signal, atol=1e-6)
    assert any("assumed the canonical order" in note for note in ecg.notes)


def test_npz_with_keys(tmp_path: Path, analytic_ecg) -> None:
    signal = analytic_ecg(500)
    path = tmp_path / "record.npz"
    np.savez(path, signal=signal * 1000, sampling_rate_hz=np.float64(500), leads=np.array(CANONICAL_LEADS))
    ecg = read_ecg(path)
    np.testing.assert_allclose(ecg.signal_mv, signal, atol=1e-5)
    assert any("µV→mV (inferred" in note for note in ecg.notes)


def test_pickled_numpy_content_is_refused(tmp_path: Path, analytic_ecg) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(EcgInputError, match=r"objects\.npy: not a plain numeric \.npy array"):
        read_ecg(tmp_path / "objects.npy", sampling_rate_hz=500)
    leads = np.array(list(CANONICAL_LEADS), dtype=object)
    np.savez(tmp_path / "objects.npz", signal=analytic_ecg(500), sampling_rate_hz=500, leads=leads)
    with pytest.raises(EcgInputError, match=r"objects\.npz: \.npz holds object arrays"):
        read_ecg(tmp_path / "objects.npz")
    np.savez(tmp_path / "nosignal.npz", x=np.zeros(3))
    with pytest.raises(EcgInputError, match=r"nosignal\.npz: \.npz has no 'signal' array"):
        read_ecg(tmp_path / "nosignal.npz")


# ---- units, sampling rate, lengths ------------------------------------------------------------


def test_microvolts_and_millivolts_give_identical_windows(analytic_ecg) -> None:
    signal = analytic_ecg(500)
    in_mv = prepare_windows(read_ecg_array(signal, 500, CANONICAL_LEADS))
    in_uv_auto = prepare_windows(read_ecg_array(signal * 1000, 500, CANONICAL_LEADS))
    in_uv_given = prepare_windows(read_ecg_array(signal * 1000, 500, CANONICAL_LEADS, units="uV"))
    np.testing.assert_allclose(in_uv_auto, in_mv, atol=1e-6)
    np.testing.assert_array_equal(in_uv_given, in_uv_auto)
    # Explicit units win over the amplitude rule.
    forced = read_ecg_array(signal * 1000, 500, CANONICAL_LEADS, units="mV")
    assert np.nanmax(np.abs(forced.signal_mv)) > 100


def test_1000hz_and_500hz_of_the_same_signal_agree(analytic_ecg) -> None:
    fast = prepare_windows(read_ecg_array(analytic_ecg(1000), 1000, CANONICAL_LEADS))
    slow = prepare_windows(read_ecg_array(analytic_ecg(500), 500, CANONICAL_LEADS))
    assert fast.shape == slow.shape == (4, 12, 250)
    difference = np.abs(fast - slow)
    # Interior: identical up to filter ripple. Record edges: the shared resampler zero-pads, so the
    # first/last few samples differ slightly between source rates (still < 0.05 mV of ~1.4 mV).
    record = np.concatenate(list(difference), axis=-1)
    assert record[:, 10:-10].max() < 1e-3
    assert difference.max() < 0.05


@pytest.mark.parametrize(("seconds", "windows"), [(15.0, 6), (10.0, 4), (6.0, 2), (2.5, 1)])
def test_window_count_follows_record_length(analytic_ecg, seconds: float, windows: int) -> None:
    ecg = read_ecg_array(analytic_ecg(500, seconds=seconds), 500, CANONICAL_LEADS)
    assert prepare_windows(ecg).shape == (windows, 12, 250)
    assert any(f"{windows} window(s) of 2.5 s" in note for note in ecg.notes)


def test_long_record_is_capped_with_evenly_spread_windows(analytic_ecg) -> None:
    ecg = read_ecg_array(analytic_ecg(100, seconds=400.0), 100, CANONICAL_LEADS)
    windows = prepare_windows(ecg, max_windows=10)
    assert windows.shape == (10, 12, 250)
    np.testing.assert_array_equal(windows[-1], np.clip(ecg.signal_mv[:, -250:], -3, 3))
    assert prepare_windows(ecg, max_windows=None).shape == (160, 12, 250)


def test_sampling_rate_argument_overrides_the_file(mimic_record: Path) -> None:
    ecg = read_ecg(mimic_record, sampling_rate_hz=250)
    assert ecg.sampling_rate_hz == 250
    assert any("overridden" in note for note in ecg.notes)


# ---- lead handling -----------------------------------------------------------------------------


def test_missing_leads_error_or_zero_fill(analytic_ecg) -> None:
    # Limb leads follow from I and II (test_eight_lead_input_derives_the_limb_leads); precordial ones do not.
    ten = [lead for lead in CANONICAL_LEADS if lead not in ("V1", "V2")]
    signal = analytic_ecg(500)[[CANONICAL_LEADS.index(n) for n in ten]]
    with pytest.raises(EcgInputError, match=r"ten: missing lead\(s\) V1, V2"):
        read_ecg_array(signal, 500, ten, source="ten")
    ecg = read_ecg_array(signal, 500, ten, source="ten", missing_leads="zero")
    assert not ecg.signal_mv[6:8].any()
    np.testing.assert_allclose(ecg.signal_mv[8:], signal[6:], atol=1e-6)
    assert "missing lead(s) V1, V2 filled with zeros" in ecg.notes
    without_ii = [lead for lead in CANONICAL_LEADS if lead not in ("II", "III")]
    partial = analytic_ecg(500)[[CANONICAL_LEADS.index(n) for n in without_ii]]
    with pytest.raises(EcgInputError, match=r"missing lead\(s\) II, III"):
        read_ecg_array(partial, 500, without_ii, source="no-ii")


def test_an_all_nan_lead_counts_as_missing(analytic_ecg) -> None:
    signal = analytic_ecg(500)
    signal[7] = np.nan
    with pytest.raises(EcgInputError, match=r"lead\(s\) V2 contain no finite samples"):
        read_ecg_array(signal, 500, CANONICAL_LEADS)
    assert not read_ecg_array(signal, 500, CANONICAL_LEADS, missing_leads="zero").signal_mv[7].any()


def test_aliases_extra_channels_and_cabrera_minus_avr(analytic_ecg) -> None:
    signal = analytic_ecg(500)
    names = ["lead i", "DII", "3", "-aVR", "AVL", "avf", "V1", "V2", "V3", "V4", "V5", "V6", "vx"]
    stacked = np.vstack([signal[:3], -signal[3:4], signal[4:], np.zeros((1, signal.shape[1]))])
    ecg = read_ecg_array(stacked, 500, names)
    np.testing.assert_allclose(ecg.signal_mv, signal, atol=1e-6)
    assert "aVR taken as the negated -aVR lead" in ecg.notes
    assert "ignored non-standard channel(s) vx" in ecg.notes


# ---- every bad input names the file and the problem --------------------------------------------


@pytest.mark.parametrize(
    ("array_shape", "names", "fs", "message"),
    [
        ((11, 1000), CANONICAL_LEADS, 100, r"wrong number of leads"),
        ((12, 1000), [*CANONICAL_LEADS[:11], "V5"], 100, r"duplicate lead\(s\) V5"),
        ((12, 1000), CANONICAL_LEADS, float("nan"), r"sampling rate must be a positive finite number"),
        ((12, 1000), CANONICAL_LEADS, float("inf"), r"sampling rate must be a positive finite number"),
        ((12, 1000), CANONICAL_LEADS, 0.0, r"sampling rate must be a positive finite number"),
        ((12, 240), CANONICAL_LEADS, 100, r"record is 2\.40 s long .* at least 2\.5 s is needed"),
        ((12, 1000, 2), CANONICAL_LEADS, 100, r"expected a 2-D signal"),
    ],
)
def test_bad_arrays(array_shape: tuple[int, ...], names, fs: float, message: str) -> None:
    array = np.random.default_rng(0).normal(0, 0.3, array_shape)
    with pytest.raises(EcgInputError, match=rf"^upload\.json: {message}"):
        read_ecg_array(array, fs, names, source="upload.json")


def test_all_nan_record(tmp_path: Path) -> None:
    np.save(tmp_path / "empty.npy", np.full((12, 1000), np.nan))
    with pytest.raises(EcgInputError, match=r"empty\.npy: record contains no finite samples"):
        read_ecg(tmp_path / "empty.npy", sampling_rate_hz=100)


def test_bad_files(tmp_path: Path, mimic_record: Path) -> None:
    with pytest.raises(EcgInputError, match=r"nowhere\.npy: no such file"):
        read_ecg(tmp_path / "nowhere.npy")
    with pytest.raises(EcgInputError, match=r"nowhere\.hea: no such file"):
        read_ecg(tmp_path / "nowhere.hea")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EcgInputError, match=r"notes\.txt: unsupported file type \.txt"):
        read_ecg(tmp_path / "notes.txt")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rec.hea").write_text("this is not a header\n")
    with pytest.raises(EcgInputError, match=r"rec\.hea: unreadable WFDB header"):
        read_ecg(broken / "rec.hea")

    folder = tmp_path / "copies"
    folder.mkdir()
    for suffix in (".hea", ".dat"):
        shutil.copy(mimic_record.with_suffix(suffix), folder / f"40689238{suffix}")
    data = (folder / "40689238.dat").read_bytes()
    (folder / "40689238.dat").write_bytes(data[: len(data) // 2 + 5])
    with pytest.raises(EcgInputError, match=r"40689238: corrupt or truncated WFDB signal file"):
        read_ecg(folder / "40689238")
    (folder / "40689238.dat").unlink()
    with pytest.raises(EcgInputError, match=r"40689238: WFDB signal file missing \(40689238\.dat\)"):
        read_ecg(folder / "40689238")


def test_invalid_options_are_usage_errors(analytic_ecg) -> None:
    with pytest.raises(ValueError, match="units must be"):
        read_ecg_array(analytic_ecg(500), 500, CANONICAL_LEADS, units="volts")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing_leads must be"):
        read_ecg_array(analytic_ecg(500), 500, CANONICAL_LEADS, missing_leads="drop")  # type: ignore[arg-type]


def test_error_survives_pickling_for_worker_processes() -> None:
    error = pickle.loads(pickle.dumps(EcgInputError("a.hea", "no such file")))
    assert isinstance(error, EcgInputError)
    assert (error.source, error.problem, str(error)) == ("a.hea", "no such file", "a.hea: no such file")


# ---- batch inputs -------------------------------------------------------------------------------


def test_iter_inputs_expands_folders_and_csv_lists(tmp_path: Path, mimic_record: Path, analytic_ecg) -> None:
    root = tmp_path / "mimic-iv-ecg"
    np.save(root / "extra.npy", analytic_ecg(100))
    (root / "extra.npy.json").write_text(json.dumps({"sampling_rate_hz": 100}))
    shutil.copy(dicom_path(), root / "ecg.dcm")
    (root / "readme.txt").write_text("ignored")
    found = iter_inputs([root])
    assert sorted(p.name for p in found) == ["40689238.hea", "ecg.dcm", "extra.npy"]
    assert all(isinstance(read_ecg(p), EcgInput) for p in found)

    # MIMIC's record_list.csv: paths relative to the folder, WFDB records without extension.
    relative = mimic_record.relative_to(root)
    (root / "record_list.csv").write_text(f"subject_id,study_id,path\n10000032,40689238,{relative}\n")
    listed = iter_inputs([root / "record_list.csv", root / "extra.npy", root / "extra.npy"])
    assert listed == [mimic_record, root / "extra.npy"]
    np.testing.assert_array_equal(read_ecg(listed[0]).signal_mv, read_ecg(mimic_record).signal_mv)


def test_iter_inputs_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EcgInputError, match=r"empty: folder contains no ECG files"):
        iter_inputs([tmp_path / "empty"])
    with pytest.raises(EcgInputError, match=r"ghost\.hea: no such file or folder"):
        iter_inputs([tmp_path / "ghost.hea"])
    (tmp_path / "list.csv").write_text("file\na.npy\n")
    with pytest.raises(EcgInputError, match=r"list\.csv: CSV list needs a 'path' column"):
        iter_inputs([tmp_path / "list.csv"])
    (tmp_path / "blank.csv").write_text("path\n")
    with pytest.raises(EcgInputError, match=r"blank\.csv: CSV list has no rows"):
        iter_inputs([tmp_path / "blank.csv"])
    with pytest.raises(EcgInputError, match="no input files given"):
        iter_inputs([])


def test_eight_lead_input_derives_the_limb_leads(analytic_ecg) -> None:  # type: ignore[no-untyped-def]
    """GE MUSE / SCP-ECG store I, II, V1-V6: III, aVR, aVL, aVF follow from Einthoven and Goldberger."""
    from ecgkt.signals.readers import read_ecg_array

    full = analytic_ecg(500)
    kept = [CANONICAL_LEADS.index(lead) for lead in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    ecg = read_ecg_array(full[kept], 500, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], units="mV")
    signal = ecg.signal_mv.astype(np.float64)
    lead = {name: signal[k] for k, name in enumerate(CANONICAL_LEADS)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-6)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-6)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-6)
    assert any("derived lead(s) III, aVR, aVL, aVF" in note for note in ecg.notes)
