"""`ecgkt predict`: every input format, batch runs, JSON and CSV output, and every bad input's error."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import wfdb
from predict_samples import DIAGNOSES, LABS, realistic_ecg_mv
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.mimic.layout import ECG_ADC_GAIN, MIMIC_LEAD_ORDER, wfdb_record_dir
from ecgkt.signals.leads import CANONICAL_LEADS

runner = CliRunner()


def write_mimic_wfdb(
    root: Path, subject: int = 10000032, study: int = 40689238, leads: tuple[str, ...] = MIMIC_LEAD_ORDER
) -> Path:
    """A 10 s, 500 Hz record exactly as MIMIC-IV-ECG stores it (format 16, 200 adu/mV, aVF before aVL)."""
    folder = root / "mimic-iv-ecg" / wfdb_record_dir(subject, study)
    folder.mkdir(parents=True, exist_ok=True)
    signal = realistic_ecg_mv(seed=study % 97)
    columns = [signal[CANONICAL_LEADS.index(lead)] for lead in leads]
    wfdb.wrsamp(
        str(study),
        fs=500,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=np.stack(columns, axis=1).astype(np.float64),
        fmt=["16"] * len(leads),
        adc_gain=[ECG_ADC_GAIN] * len(leads),
        baseline=[0] * len(leads),
        comments=[f"{subject}: N"],
        write_dir=str(folder),
    )
    return folder / str(study)


def write_npy(path: Path, seconds: float = 10.0, sidecar: bool = True, seed: int = 0) -> Path:
    np.save(path, realistic_ecg_mv(fs=500, seconds=seconds, seed=seed), allow_pickle=False)
    if sidecar:
        path.with_name(path.name + ".json").write_text(
            json.dumps({"sampling_rate_hz": 500, "leads": list(CANONICAL_LEADS), "units": "mV"})
        )
    return path


def predict(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["predict", *args])
    return result.exit_code, result.stdout, result.stderr


def assert_valid_result(payload: dict[str, object]) -> None:
    assert set(payload) == {"source", "ecgkt_version", "n_windows", "notes", "diagnoses", "labs", "measurements"}
    diagnoses = payload["diagnoses"]
    assert isinstance(diagnoses, list) and {d["code"] for d in diagnoses} == set(DIAGNOSES)
    assert [d["probability"] for d in diagnoses] == sorted((d["probability"] for d in diagnoses), reverse=True)
    assert {lab["label"] for lab in payload["labs"]} == set(LABS)  # type: ignore[attr-defined]
    for d in diagnoses:
        assert set(d) == {
            "code",
            "title",
            "probability",
            "threshold",
            "positive",
            "validation_auroc",
            "supporting_labs",
        }


def test_wfdb_record_in_mimic_layout(bundle_path: Path, tmp_path: Path) -> None:
    record = write_mimic_wfdb(tmp_path)
    for given in (record, record.with_suffix(".hea")):
        code, out, _ = predict(str(bundle_path), str(given))
        assert code == 0
        payload = json.loads(out)
        assert_valid_result(payload)
        assert payload["n_windows"] == 4
        assert payload["source"] == str(given)
        assert any("resampled 500→100 Hz" in note for note in payload["notes"])


def test_mimic_lead_order_equals_canonical_order(bundle_path: Path, tmp_path: Path) -> None:
    mimic = write_mimic_wfdb(tmp_path / "a", leads=MIMIC_LEAD_ORDER)
    canonical = write_mimic_wfdb(tmp_path / "b", leads=CANONICAL_LEADS)
    first = json.loads(predict(str(bundle_path), str(mimic))[1])
    second = json.loads(predict(str(bundle_path), str(canonical))[1])
    assert first["diagnoses"] == second["diagnoses"] and first["labs"] == second["labs"]


def test_real_dicom_ecg_from_pydicom(bundle_path: Path) -> None:
    from pydicom.data import get_testdata_file

    dicom = get_testdata_file("waveform_ecg.dcm")
    assert dicom is not None
    code, out, _ = predict(str(bundle_path), dicom)
    assert code == 0
    payload = json.loads(out)
    assert_valid_result(payload)
    assert payload["n_windows"] == 4
    assert any("µV→mV" in note for note in payload["notes"])
    assert any("1000→100 Hz" in note for note in payload["notes"])


def test_npy_with_sidecar_and_with_options(bundle_path: Path, tmp_path: Path) -> None:
    with_sidecar = write_npy(tmp_path / "a.npy")
    bare = write_npy(tmp_path / "b.npy", sidecar=False)
    code, out, _ = predict(str(bundle_path), str(with_sidecar))
    assert code == 0
    assert_valid_result(json.loads(out))
    code, _, err = predict(str(bundle_path), str(bare))
    assert code == 2 and "b.npy" in err and "sampling rate" in err
    code, out, _ = predict(str(bundle_path), str(bare), "--sampling-rate", "500", "--leads", ",".join(CANONICAL_LEADS))
    assert code == 0
    assert json.loads(out)["n_windows"] == 4


def test_batch_over_folder_and_csv_list_json_and_csv(bundle_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(3):
        write_npy(folder / f"ecg{i}.npy", seed=i)
    code, out, _ = predict(str(bundle_path), str(folder))
    assert code == 0
    payload = json.loads(out)
    assert isinstance(payload, list) and len(payload) == 3
    listing = tmp_path / "list.csv"
    listing.write_text("path\nbatch/ecg0.npy\nbatch/ecg2.npy\n")
    target = tmp_path / "out" / "predictions.csv"
    code, out, err = predict(str(bundle_path), str(listing), "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and "wrote 2 prediction(s)" in err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [Path(row["source"]).name for row in rows] == ["ecg0.npy", "ecg2.npy"]
    for row in rows:
        assert 0.0 <= float(row["dx:E875:probability"]) <= 1.0
        assert row["dx:E875:positive"] in ("0", "1")
        assert 0.0 <= float(row["lab:Potassium_high:probability"]) <= 1.0
        if row["dx:E875:positive"] == "1" and row["dx:E875:supporting_labs"]:
            assert "=" in row["dx:E875:supporting_labs"]


def test_json_out_file(bundle_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    code, out, _ = predict(str(bundle_path), str(write_npy(tmp_path / "x.npy")), "--out", str(target))
    assert code == 0 and out == ""
    assert_valid_result(json.loads(target.read_text()))


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name → (path, expected fragment of the error)."""
    bad: dict[str, tuple[Path, str]] = {}
    bad["missing"] = (tmp_path / "nowhere.npy", "no such file")
    text = tmp_path / "notes.txt"
    text.write_text("not an ECG")
    bad["unsupported"] = (text, "unsupported file type")
    eleven = write_mimic_wfdb(tmp_path / "eleven", leads=tuple(lead for lead in MIMIC_LEAD_ORDER if lead != "V3"))
    bad["missing_lead"] = (eleven, "missing lead(s) V3")
    truncated = write_mimic_wfdb(tmp_path / "trunc", study=40000001)
    dat = truncated.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    bad["truncated"] = (truncated, "truncated")
    no_dat = write_mimic_wfdb(tmp_path / "nodat", study=40000002)
    no_dat.with_suffix(".dat").unlink()
    bad["missing_dat"] = (no_dat, "missing")
    wrong_leads = tmp_path / "wrong.npy"
    np.save(wrong_leads, np.zeros((5000, 7), np.float32))
    wrong_leads.with_name("wrong.npy.json").write_text(json.dumps({"sampling_rate_hz": 500}))
    bad["wrong_shape"] = (wrong_leads, "wrong number of leads")
    short = write_npy(tmp_path / "short.npy", seconds=1.0)
    bad["too_short"] = (short, "1.00 s long")
    all_nan = tmp_path / "nan.npy"
    np.save(all_nan, np.full((12, 5000), np.nan, np.float32))
    all_nan.with_name("nan.npy.json").write_text(json.dumps({"sampling_rate_hz": 500}))
    bad["all_nan"] = (all_nan, "no finite samples")
    from pydicom.data import get_testdata_file

    image = get_testdata_file("CT_small.dcm")
    assert image is not None
    bad["dicom_image"] = (Path(image), "no waveform")
    return bad


def test_each_bad_input_gives_exit_2_and_names_the_file(bundle_path: Path, tmp_path: Path) -> None:
    for name, (path, fragment) in _bad_inputs(tmp_path).items():
        code, out, err = predict(str(bundle_path), str(path))
        assert code == 2, name
        assert out == "", name
        assert path.name in err, (name, err)
        assert fragment in err, (name, err)
        assert "Traceback" not in err, name


def test_missing_lead_can_be_zero_filled(bundle_path: Path, tmp_path: Path) -> None:
    eleven = write_mimic_wfdb(tmp_path, leads=tuple(lead for lead in MIMIC_LEAD_ORDER if lead != "V3"))
    code, out, _ = predict(str(bundle_path), str(eleven), "--missing-leads", "zero")
    assert code == 0
    assert any("V3" in note and "zeros" in note for note in json.loads(out)["notes"])


def test_skip_errors_reports_and_counts(bundle_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_npy(folder / "good.npy")
    write_npy(folder / "bad.npy", seconds=1.0)
    code, _, err = predict(str(bundle_path), str(folder))
    assert code == 2 and "bad.npy" in err
    code, out, err = predict(str(bundle_path), str(folder), "--skip-errors")
    assert code == 0
    assert [Path(r["source"]).name for r in json.loads(out)] == ["good.npy"]
    assert "bad.npy" in err and "skipped 1 of 2" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--format", "xml"], "--format"),
        (["--units", "volts"], "--units"),
        (["--missing-leads", "maybe"], "--missing-leads"),
        (["--explanation", "random"], "--explanation"),
    ],
)
def test_bad_options_are_usage_errors(bundle_path: Path, tmp_path: Path, args: list[str], fragment: str) -> None:
    code, _, err = predict(str(bundle_path), str(write_npy(tmp_path / "x.npy")), *args)
    assert code == 2 and fragment in err


def test_bad_bundle_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = predict(str(tmp_path / "no-bundle"), str(write_npy(tmp_path / "x.npy")))
    assert code == 2 and "no-bundle" in err and "Traceback" not in err
