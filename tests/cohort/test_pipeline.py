"""End-to-end builds of tiny handcrafted MIMIC folders: store contents, matching, labels, features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tiny_mimic import TinyMimic

from ecgkt.cohort.config import BuildConfig
from ecgkt.cohort.features import feature_catalogue
from ecgkt.cohort.signals import read_record
from ecgkt.mimic.layout import MimicFolders
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.store import Store

N_PATIENTS = 30


def _expected_studies() -> set[int]:
    matched = {40000000 + 10 * i for i in range(N_PATIENTS)}
    matched |= {40000000 + 10 * i + 1 for i in range(N_PATIENTS) if i % 4 == 0}
    return matched


def test_store_opens_and_follows_the_records_contract(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    records = store.records
    assert records.columns[:10] == [
        "row",
        "subject_id",
        "study_id",
        "stay_id",
        "hadm_id",
        "ecg_time",
        "intime",
        "fold",
        "age",
        "gender",
    ]
    assert records["row"].to_list() == list(range(len(store)))
    assert set(records["study_id"].to_list()) == _expected_studies()  # +180 min ECGs are not in the cohort
    assert records["ecg_time"].dtype == pl.Datetime("us") and records["intime"].dtype == pl.Datetime("us")
    assert records["fold"].min() >= 0 and records["fold"].max() <= 19
    assert set(records["gender"].to_list()) == {"F", "M"}
    assert records.sort("subject_id", "ecg_time")["row"].to_list() == records["row"].to_list()
    assert store.signals.shape == (len(store), 12, 1000)
    for subject, group in records.group_by("subject_id"):
        assert group["fold"].n_unique() == 1, subject
    assert store.manifest.preprocessing.leads == list(CANONICAL_LEADS)
    assert store.manifest.folds.sizes == np.bincount(records["fold"].to_numpy(), minlength=20).tolist()


def test_signals_equal_the_shared_preprocessing_of_each_record(tiny_store: Path, tiny_folders: MimicFolders) -> None:
    store = Store.open(tiny_store)
    for row in (0, 7, len(store) - 1):
        path = store.records["path"][row]
        expected = read_record(tiny_folders.ecg / path).signal
        np.testing.assert_array_equal(store.signals[row], expected)


def test_diagnosis_labels_propagated_and_hospital_codes_win(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    labels = store.manifest.diagnosis_labels
    assert labels == ["I48", "I489", "I4891", "I50", "I509"]  # R079 (ED code of admitted stays) is replaced
    targets = store.diagnosis_targets()
    admitted = store.records["hadm_id"].is_not_null().to_numpy()
    np.testing.assert_array_equal(targets[:, labels.index("I4891")], (~admitted).astype(np.float32))
    np.testing.assert_array_equal(targets[:, labels.index("I509")], admitted.astype(np.float32))
    assert store.manifest.diagnosis_titles["I48"] == "Atrial fibrillation and flutter"


def test_lab_labels_follow_the_closest_value(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    names = store.manifest.lab_labels
    assert store.manifest.lab_reference_ranges["Potassium"] == (3.3, 5.1)
    targets = store.lab_targets()
    records = store.records
    for row in range(len(store)):
        i = (records["subject_id"][row] - 10000000) // 37
        second_ecg = records["study_id"][row] % 10 == 1  # at +60 min: closest potassium is the +70 one
        k = round(round(2.9 + 0.1 * i, 3) + (0.2 if second_ecg else 0.0), 3)
        assert targets[row, names.index("Potassium_low")] == float(k < 3.3)
        assert targets[row, names.index("Potassium_high")] == float(k > 5.1)
    creatinine = targets[:, names.index("Creatinine_high")]
    assert np.isnan(creatinine).all()  # only measured 5 h after intime: unknown, not normal


def test_features_of_known_series(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    frame = store.raw_features()
    assert frame.columns == [f.name for f in store.manifest.features] == [d.name for d in feature_catalogue()]
    records = store.records
    for row in (0, 5, 20):
        i = (records["subject_id"][row] - 10000000) // 37
        values = frame.row(row, named=True)
        k = 2.9 + 0.1 * i
        assert values["Potassium__mean"] == pytest.approx(k + 0.1)
        assert values["Potassium__slope"] == pytest.approx(0.2 / 55)
        assert values["heartrate__first"] == 70 + i  # triage vitals enter at intime
        assert values["heartrate__max"] == 90 + i  # the +120 min value is outside the window
        assert values["weight_kg"] == pytest.approx((150 + i) * 0.45359237)  # −3 days beats +10 days
        assert values["height_cm"] is None  # 40 days away
        assert values["bmi"] == 24.5
        assert values["acuity"] == 1 + i % 5
        assert values["gender"] == (0.0 if i % 2 == 0 else 1.0)
        assert values["race"] == [0.0, 1.0, 2.0, 3.0, None][i % 5]
        assert values["Creatinine__mean"] is None


def test_feature_statistics_come_from_training_folds(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    spec = {f.name: f for f in store.manifest.features}
    age = store.raw_features()["age"].to_numpy()
    train = np.isin(store.folds, store.manifest.folds.train)
    assert spec["age"].median == pytest.approx(np.median(age[train]))
    assert spec["age"].group == "routine" and spec["Potassium__mean"].group == "lab"
    tabular = store.tabular()
    assert np.isfinite(tabular.numeric).all()


def test_reports_and_manifest_provenance(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    report = json.loads((tiny_store / "build_report.json").read_text())
    assert report["skips"]["cohort.no_matching_stay"]["count"] == 6
    assert report["counts"]["ECGs in the store"] == len(store)
    markdown = (tiny_store / "cohort_report.md").read_text()
    assert "I4891" in markdown and "Potassium__mean" in markdown and "patients" in markdown
    assert set(store.manifest.build_parameters) == set(BuildConfig.model_fields)
    assert any(key.endswith("labevents.csv.gz") for key in store.manifest.sources)
    assert not (tiny_store / ".build").exists()


def test_bad_records_are_counted_not_fatal(tmp_path: Path, make_mimic) -> None:  # type: ignore[no-untyped-def]
    from ecgkt.cohort.pipeline import build_store

    def damage(mimic: TinyMimic) -> None:
        # ECG list: patient 0 → ecgs 0, 1 (+60 min), 2 (unmatched); 1 → 3; 2 → 4; 3 → 5; 4 → 6, 7; 5 → 8, 9; 6 → 10
        mimic.ecgs[1].seconds = 8.0  # too short
        mimic.ecgs[3].fs = 250.0  # resampled
        mimic.ecgs[5].nan_stretch = True
        mimic.ecgs[6].flat_lead = "V2"
        mimic.ecgs[7].write = False  # missing files
        mimic.ecgs[10].sig_names = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "Vx")
        duplicate = mimic.ecgs[0]
        mimic.ecgs.append(type(duplicate)(duplicate.subject_id, duplicate.study_id, duplicate.ecg_time, write=False))
        mimic.rows("labevents")[0]["valuenum"] = "see note"
        mimic.rows("labevents")[1]["itemid"] = 77777
        mimic.rows("edstays")[2]["outtime"] = "2170-01-01 00:00:00"  # before intime: stay skipped
        mimic.rows("vitalsign")[0]["heartrate"] = 1000

    folders = make_mimic(12, damage)
    out = build_store(
        folders, tmp_path / "store", BuildConfig(workers=1, lab_label_min_positives=0, lab_label_min_negatives=0)
    )
    skips = json.loads((out / "build_report.json").read_text())["skips"]
    for key in (
        "signal.too_short",
        "signal.resampled",
        "signal.nan_interpolated",
        "signal.flat_lead",
        "signal.missing_file",
        "signal.bad_leads",
        "record_list.duplicate_study_id",
        "labevents.non_numeric_valuenum",
        "labevents.unknown_itemid",
        "edstays.outtime_before_intime",
        "vitals.implausible_value",
    ):
        assert skips[key]["count"] >= 1, key
        assert skips[key]["examples"], key
    store = Store.open(out)
    matched = 12 + 3 - 1  # 12 first ECGs + 3 second ECGs, minus the one of the skipped stay (i=2)
    assert len(store) == matched - 3  # too short, missing files, bad leads
    assert "files/" in skips["signal.missing_file"]["examples"][0]
