"""Handcrafted tiny MIMIC folders (exact file layouts) for the builder tests.

`TinyMimic.default(n)` creates n patients with one ED stay each and hand-chosen quirks:
every 4th patient has a second ECG in the window, every 5th an ECG 3 h after intime (unmatched),
every 3rd stay is admitted (hospital codes win), ED codes alternate between ICD-10 I4891 and its
ICD-9 form 42731, Potassium is measured twice in the window with values that make some stays low,
some normal and some high. Tests mutate the row lists (add bad rows, damage files) before `write`.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import wfdb

from ecgkt.cohort.config import BuildConfig
from ecgkt.mimic import layout
from ecgkt.mimic.labs import LAB_BY_NAME, LAB_ITEMS
from ecgkt.mimic.layout import MimicFolders

T0 = datetime(2180, 1, 1, 8, 0, 0)
FMT = "%Y-%m-%d %H:%M:%S"
OTHER_ITEMID = 50000  # in d_labitems, not a protocol lab


def ts(moment: datetime) -> str:
    return moment.strftime(FMT)


def lead_amplitudes() -> dict[str, float]:
    """Each lead gets its own amplitude so tests can verify selection by name (canonical i → 0.1·(i+1))."""
    canonical = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    return {name: 0.1 * (i + 1) for i, name in enumerate(canonical)}


@dataclass
class EcgSpec:
    subject_id: int
    study_id: int
    ecg_time: datetime
    fs: float = 500.0
    seconds: float = 10.0
    sig_names: tuple[str, ...] = layout.MIMIC_LEAD_ORDER
    nan_stretch: bool = False
    flat_lead: str | None = None
    all_flat: bool = False
    write: bool = True

    @property
    def rel_path(self) -> str:
        return f"{layout.wfdb_record_dir(self.subject_id, self.study_id)}/{self.study_id}"


@dataclass
class TinyMimic:
    ecgs: list[EcgSpec] = field(default_factory=list)
    tables: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, object]]:
        return self.tables.setdefault(table, [])

    @classmethod
    def default(cls, n_patients: int = 30) -> TinyMimic:
        mimic = cls()
        for lab in LAB_ITEMS:
            mimic.rows("d_labitems").append(
                {"itemid": lab.itemid, "label": lab.label, "fluid": lab.fluid, "category": lab.category}
            )
        mimic.rows("d_labitems").append(
            {"itemid": OTHER_ITEMID, "label": "Other", "fluid": "Blood", "category": "Chemistry"}
        )
        for code, title in (("I4891", "Unspecified atrial fibrillation"), ("I509", "Heart failure, unspecified")):
            mimic.rows("d_icd_diagnoses").append({"icd_code": code, "icd_version": 10, "long_title": title})
        for i in range(n_patients):
            mimic.add_patient(i)
        return mimic

    def add_patient(self, i: int) -> None:
        subject = 10000000 + 37 * i
        stay = 30000000 + i
        hadm = 20000000 + i if i % 3 == 0 else None
        intime = T0 + timedelta(days=2 * i)
        gender = "F" if i % 2 == 0 else "M"
        self.rows("patients").append(
            {
                "subject_id": subject,
                "gender": gender,
                "anchor_age": 30 + (7 * i) % 60,
                "anchor_year": 2180,
                "anchor_year_group": "2017 - 2019",
                "dod": "",
            }
        )
        self.rows("edstays").append(
            {
                "subject_id": subject,
                "hadm_id": hadm,
                "stay_id": stay,
                "intime": ts(intime),
                "outtime": ts(intime + timedelta(hours=5)),
                "gender": gender,
                "race": ["WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC/LATINO - CUBAN", "ASIAN - CHINESE", "UNKNOWN"][
                    i % 5
                ],
                "arrival_transport": "WALK IN",
                "disposition": "HOME" if hadm is None else "ADMITTED",
            }
        )
        self.rows("triage").append(
            {
                "subject_id": subject,
                "stay_id": stay,
                "temperature": 98.0 + 0.1 * i,
                "heartrate": 70 + i,
                "resprate": 16,
                "o2sat": 97,
                "sbp": 120 + i,
                "dbp": 80,
                "pain": "0",
                "acuity": 1 + i % 5,
                "chiefcomplaint": "CHEST PAIN",
            }
        )
        for minutes, hr in ((10, 80 + i), (40, 85 + i), (80, 90 + i), (120, 200)):
            self.rows("vitalsign").append(
                {
                    "subject_id": subject,
                    "stay_id": stay,
                    "charttime": ts(intime + timedelta(minutes=minutes)),
                    "temperature": 98.6,
                    "heartrate": hr,
                    "resprate": 18,
                    "o2sat": 98,
                    "sbp": 130,
                    "dbp": 85,
                    "rhythm": "",
                    "pain": "2",
                }
            )
        # ECGs: one at +20 min; every 4th patient a second at +60; every 5th one unmatched at +180
        self.ecgs.append(EcgSpec(subject, 40000000 + 10 * i, intime + timedelta(minutes=20)))
        if i % 4 == 0:
            self.ecgs.append(EcgSpec(subject, 40000000 + 10 * i + 1, intime + timedelta(minutes=60)))
        if i % 5 == 0:
            self.ecgs.append(EcgSpec(subject, 40000000 + 10 * i + 2, intime + timedelta(minutes=180)))
        potassium = LAB_BY_NAME["Potassium"]
        k_value = 2.9 + 0.1 * i  # some below 3.3, some above 5.1
        for minutes, value in ((15, k_value), (70, k_value + 0.2)):
            self.add_lab(subject, potassium.itemid, intime + timedelta(minutes=minutes), value, 3.3, 5.1)
        hemoglobin = LAB_BY_NAME["Hemoglobin"]
        self.add_lab(subject, hemoglobin.itemid, intime + timedelta(minutes=30), 10.0 + 0.3 * i, 13.7, 17.5)
        creatinine = LAB_BY_NAME["Creatinine"]
        self.add_lab(subject, creatinine.itemid, intime + timedelta(minutes=300), 1.0, 0.5, 1.2)  # outside windows
        self.add_lab(subject, OTHER_ITEMID, intime + timedelta(minutes=20), 5.0, None, None)
        ecg_date = (intime + timedelta(minutes=20)).date()
        for days, name, value in (
            (-3, "Weight (Lbs)", 150 + i),
            (10, "Weight (Lbs)", 300),
            (-40, "Height (Inches)", 65),
            (0, "BMI (kg/m2)", 24.5),
        ):
            self.rows("omr").append(
                {
                    "subject_id": subject,
                    "chartdate": str(ecg_date + timedelta(days=days)),
                    "seq_num": 1,
                    "result_name": name,
                    "result_value": str(value),
                }
            )
        if hadm is None:
            code, version = ("I4891", 10) if i % 2 == 0 else ("42731", 9)
            self.rows("diagnosis").append(
                {
                    "subject_id": subject,
                    "stay_id": stay,
                    "seq_num": 1,
                    "icd_code": code,
                    "icd_version": version,
                    "icd_title": "AF",
                }
            )
        else:
            self.rows("diagnosis").append(
                {
                    "subject_id": subject,
                    "stay_id": stay,
                    "seq_num": 1,
                    "icd_code": "R079",
                    "icd_version": 10,
                    "icd_title": "CHEST PAIN",
                }
            )
            self.rows("diagnoses_icd").append(
                {"subject_id": subject, "hadm_id": hadm, "seq_num": 1, "icd_code": "I509", "icd_version": 10}
            )

    def add_lab(
        self, subject: int, itemid: int, when: datetime, value: object, low: float | None, high: float | None
    ) -> None:
        rows = self.rows("labevents")
        if isinstance(value, float):
            value = round(value, 3)  # as MIMIC prints them; avoids 5.1000000000000005 in the CSV
        rows.append(
            {
                "labevent_id": len(rows) + 1,
                "subject_id": subject,
                "hadm_id": "",
                "specimen_id": len(rows) + 1,
                "itemid": itemid,
                "order_provider_id": "",
                "charttime": ts(when),
                "storetime": ts(when + timedelta(minutes=30)),
                "value": str(value),
                "valuenum": value,
                "valueuom": "",
                "ref_range_lower": low,
                "ref_range_upper": high,
                "flag": "",
                "priority": "STAT",
                "comments": "",
            }
        )

    # ---- writing ---------------------------------------------------------------------------------
    def write(self, root: Path) -> MimicFolders:
        folders = MimicFolders.from_synthetic_root(root)
        for folder in (folders.ecg, folders.hosp, folders.ed):
            folder.mkdir(parents=True, exist_ok=True)
        _write_csv(
            folders.record_list,
            layout.RECORD_LIST_COLUMNS,
            [
                {
                    "subject_id": e.subject_id,
                    "study_id": e.study_id,
                    "file_name": e.study_id,
                    "ecg_time": ts(e.ecg_time),
                    "path": e.rel_path,
                }
                for e in self.ecgs
            ],
        )
        hosp = {
            "patients": layout.PATIENTS_COLUMNS,
            "labevents": layout.LABEVENTS_COLUMNS,
            "d_labitems": layout.D_LABITEMS_COLUMNS,
            "omr": layout.OMR_COLUMNS,
            "diagnoses_icd": layout.DIAGNOSES_ICD_COLUMNS,
            "d_icd_diagnoses": layout.D_ICD_DIAGNOSES_COLUMNS,
        }
        for name, columns in hosp.items():
            _write_csv(folders.hosp_table(name), columns, self.rows(name))
        ed = {
            "edstays": layout.EDSTAYS_COLUMNS,
            "triage": layout.TRIAGE_COLUMNS,
            "vitalsign": layout.VITALSIGN_COLUMNS,
            "diagnosis": layout.ED_DIAGNOSIS_COLUMNS,
        }
        for name, columns in ed.items():
            _write_csv(folders.ed_table(name), columns, self.rows(name))
        amplitudes = lead_amplitudes()
        for spec in self.ecgs:
            if spec.write:
                write_ecg(folders.ecg, spec, amplitudes)
        return folders


def ecg_signal(spec: EcgSpec, amplitudes: dict[str, float]) -> np.ndarray:
    n = round(spec.seconds * spec.fs)
    t = np.arange(n) / spec.fs
    base = np.sin(2 * np.pi * 1.0 * t) + 0.3 * np.sin(2 * np.pi * 7.0 * t + spec.study_id % 7)
    signal = np.stack([amplitudes.get(name, 0.5) * base for name in spec.sig_names], axis=1)
    if spec.nan_stretch:
        signal[int(2 * spec.fs) : int(2.2 * spec.fs), 1] = np.nan
    if spec.flat_lead is not None:
        signal[:, spec.sig_names.index(spec.flat_lead)] = 0.0
    if spec.all_flat:
        signal[:] = 0.0
    return signal


def write_ecg(ecg_root: Path, spec: EcgSpec, amplitudes: dict[str, float]) -> Path:
    folder = ecg_root / layout.wfdb_record_dir(spec.subject_id, spec.study_id)
    folder.mkdir(parents=True, exist_ok=True)
    signal = ecg_signal(spec, amplitudes)
    wfdb.wrsamp(
        str(spec.study_id),
        fs=spec.fs,
        units=["mV"] * len(spec.sig_names),
        sig_name=list(spec.sig_names),
        p_signal=signal,
        fmt=["16"] * len(spec.sig_names),
        adc_gain=[200.0] * len(spec.sig_names),
        baseline=[0] * len(spec.sig_names),
        comments=[f"<subject_id>: {spec.subject_id}"],
        write_dir=str(folder),
    )
    return folder / str(spec.study_id)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as handle:  # type: ignore[operator]
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


# Tiny cohorts cannot reach 10 positives per validation fold: the lab-label thresholds are lowered.
TINY_CONFIG = BuildConfig(workers=1, lab_label_min_positives=0, lab_label_min_negatives=0, signal_chunk_records=8)
