"""Builders for the MIMIC tables that are pure bookkeeping: patients, admissions, edstays, record_list,
machine_measurements. Column names and order come from `ecgkt.mimic.layout`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.layout import (
    ADMISSIONS_COLUMNS,
    EDSTAYS_COLUMNS,
    MACHINE_MEASUREMENTS_COLUMNS,
    PATIENTS_COLUMNS,
    RECORD_LIST_COLUMNS,
    wfdb_record_dir,
)
from ecgkt.synth.columns import nullable_ids, strings
from ecgkt.synth.ecg_params import MachineMeasurements
from ecgkt.synth.timeline import MINUTES_PER_DAY, Patients, Stays, Visits, minutes_to_datetime

NOT_MEASURABLE = 29999  # MIMIC-IV-ECG's most common "not measurable" sentinel
ECG_BANDWIDTH = "0.005-150 Hz"
ECG_FILTERING = "60 Hz notch Baseline filter"
MEASUREMENT_FIELDS = ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis", "qrs_axis",
                      "t_axis")


def _gender(female: NDArray[np.bool_]) -> NDArray[np.object_]:
    return np.where(female, "F", "M").astype(object)


def patients_table(patients: Patients, death_day: NDArray[np.float64]) -> pl.DataFrame:
    """`death_day`: day number (days since epoch) of death, NaN when alive at last follow-up."""
    dod = np.where(np.isnan(death_day), np.datetime64("NaT"),
                   np.nan_to_num(death_day, nan=0).astype(np.int64).astype("datetime64[D]"))
    return pl.DataFrame({
        "subject_id": patients.subject_id, "gender": strings(_gender(patients.female)),
        "anchor_age": patients.anchor_age, "anchor_year": patients.anchor_year,
        "anchor_year_group": strings(patients.anchor_year_group),
        "dod": pl.Series(dod.astype("datetime64[D]")).cast(pl.Date),
    }).select(PATIENTS_COLUMNS)


def edstays_table(patients: Patients, visits: Visits, stays: Stays) -> pl.DataFrame:
    p = visits.patient
    return pl.DataFrame({
        "subject_id": patients.subject_id[p],
        "hadm_id": nullable_ids(stays.hadm_id),
        "stay_id": stays.stay_id,
        "intime": minutes_to_datetime(visits.intime), "outtime": minutes_to_datetime(stays.outtime),
        "gender": strings(_gender(patients.female[p])), "race": strings(patients.race[p]),
        "arrival_transport": strings(stays.arrival_transport), "disposition": strings(stays.disposition),
    }).sort(["subject_id", "intime"]).select(EDSTAYS_COLUMNS)


def admissions_table(patients: Patients, visits: Visits, stays: Stays, rng: np.random.Generator) -> pl.DataFrame:
    rows = np.nonzero(stays.admitted)[0]
    p = visits.patient[rows]
    n = rows.size
    age = visits.age[rows]
    died = stays.died_in_hospital[rows]
    adm_type = np.array(["EW EMER.", "OBSERVATION ADMIT", "URGENT", "EU OBSERVATION", "DIRECT EMER."], dtype=object)
    discharge = np.array(["HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB",
                          "CHRONIC/LONG TERM ACUTE CARE", None], dtype=object)
    insurance = np.where(age >= 65, "Medicare",
                         rng.choice(np.array(["Other", "Medicaid", "Medicare"], dtype=object), n, p=[0.6, 0.3, 0.1]))
    marital = np.array(["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None], dtype=object)
    letters = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ"))
    pairs = letters[rng.integers(0, letters.size, (60, 2))]
    providers = np.array([f"P{d:03d}{a}{b}" for d, (a, b) in zip(rng.integers(0, 1000, 60).tolist(), pairs.tolist(),
                                                                  strict=True)], dtype=object)
    deathtime = np.where(died, minutes_to_datetime(stays.dischtime[rows]), np.datetime64("NaT", "us"))
    return pl.DataFrame({
        "subject_id": patients.subject_id[p], "hadm_id": stays.hadm_id[rows],
        "admittime": minutes_to_datetime(stays.admittime[rows]),
        "dischtime": minutes_to_datetime(stays.dischtime[rows]),
        "deathtime": deathtime.astype("datetime64[us]"),
        "admission_type": strings(adm_type[rng.choice(adm_type.size, n, p=[0.55, 0.15, 0.12, 0.12, 0.06])]),
        "admit_provider_id": strings(providers[rng.integers(0, providers.size, n)]),
        "admission_location": strings(np.full(n, "EMERGENCY ROOM", dtype=object)),
        "discharge_location": strings(np.where(
            died, "DIED", discharge[rng.choice(discharge.size, n, p=[0.45, 0.2, 0.15, 0.06, 0.02, 0.12])])),
        "insurance": strings(insurance),
        "language": strings(np.where(rng.random(n) < 0.9, "ENGLISH",
                                     np.where(rng.random(n) < 0.5, "?", "SPANISH"))),
        "marital_status": strings(marital[rng.choice(marital.size, n, p=[0.42, 0.3, 0.14, 0.1, 0.04])]),
        "race": strings(patients.race[p]),
        "edregtime": minutes_to_datetime(visits.intime[rows]),
        "edouttime": minutes_to_datetime(stays.outtime[rows]),
        "hospital_expire_flag": died.astype(np.int64),
    }).sort(["subject_id", "admittime"]).select(ADMISSIONS_COLUMNS)


def death_days(patients: Patients, visits: Visits, stays: Stays, death_risk: NDArray[np.float64],
               rng: np.random.Generator) -> NDArray[np.float64]:
    """Day of death: in-hospital deaths (only ever at a patient's last visit) on their discharge day;
    some other patients within a year of their last visit, as MIMIC's `dod` follow-up allows.
    """
    day = np.full(patients.n, np.nan)
    died_rows = np.nonzero(stays.died_in_hospital)[0]
    day[visits.patient[died_rows]] = stays.dischtime[died_rows] // MINUTES_PER_DAY
    last = np.zeros(patients.n, dtype=np.int64)
    np.maximum.at(last, visits.patient, stays.outtime)
    later = np.isnan(day) & (rng.random(patients.n) < death_risk)
    day[later] = last[later] // MINUTES_PER_DAY + rng.integers(5, 365, int(later.sum()))
    return day


def record_list_table(subject_id: NDArray[np.int64], study_id: NDArray[np.int64],
                      ecg_minute: NDArray[np.int64]) -> pl.DataFrame:
    paths = [f"{wfdb_record_dir(int(s), int(t))}/{int(t)}" for s, t in zip(subject_id, study_id, strict=True)]
    return pl.DataFrame({
        "subject_id": subject_id, "study_id": study_id, "file_name": study_id,
        "ecg_time": minutes_to_datetime(ecg_minute), "path": paths,
    }).select(RECORD_LIST_COLUMNS)


def machine_measurements_table(subject_id: NDArray[np.int64], study_id: NDArray[np.int64],
                               ecg_minute: NDArray[np.int64], cart_id: NDArray[np.int64],
                               measurements: Sequence[MachineMeasurements]) -> pl.DataFrame:
    n = len(measurements)
    columns: dict[str, object] = {
        "subject_id": subject_id, "study_id": study_id, "cart_id": cart_id,
        "ecg_time": minutes_to_datetime(ecg_minute),
    }
    for i in range(18):
        columns[f"report_{i}"] = pl.Series(
            [m.statements[i] if i < len(m.statements) else None for m in measurements], dtype=pl.String)
    columns["bandwidth"] = pl.Series([ECG_BANDWIDTH] * n, dtype=pl.String)
    columns["filtering"] = pl.Series([ECG_FILTERING] * n, dtype=pl.String)
    for name in MEASUREMENT_FIELDS:
        values = [getattr(m, name) for m in measurements]
        columns[name] = np.array([NOT_MEASURABLE if v is None or not np.isfinite(v) else round(v)
                                  for v in values], dtype=np.int64)
    return pl.DataFrame(columns).select(MACHINE_MEASUREMENTS_COLUMNS)
