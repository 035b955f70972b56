"""Vital signs and triage: true per-visit values from the latent state, then MIMIC-IV-ED rows.

The true heart rate here is the same one the ECG is rendered with, so the monitor and the ECG agree.
Temperature is in °F, as MIMIC-IV-ED stores it. Acute deviations resolve during the stay (half-lives
below), so the `vitalsign` time series shows treated patients improving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.layout import TRIAGE_COLUMNS, VITALSIGN_COLUMNS
from ecgkt.synth.columns import strings, with_nulls
from ecgkt.synth.lab_truth import CHRONIC_CONDITIONS
from ecgkt.synth.timeline import minutes_to_datetime

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class VitalVariable:
    name: str  # MIMIC-IV-ED column
    mean: float
    sd: float
    mean_female: float | None = None
    age_slope: float = 0.0  # per decade above 60
    half_life_min: float = 180.0
    measurement_sd: float = 1.0
    decimals: int = 0
    bounds: tuple[float, float] = (0.0, 1000.0)


VITALS: tuple[VitalVariable, ...] = (
    VitalVariable("temperature", 98.1, 0.45, half_life_min=240.0, measurement_sd=0.3, decimals=1,
                  bounds=(90.0, 106.5)),
    VitalVariable("heartrate", 70.0, 12.0, mean_female=73.0, age_slope=-0.8, measurement_sd=3.0,
                  bounds=(32.0, 190.0)),
    VitalVariable("resprate", 15.8, 1.6, measurement_sd=1.5, bounds=(8.0, 50.0)),
    VitalVariable("o2sat", 97.8, 1.2, half_life_min=120.0, measurement_sd=1.0, bounds=(60.0, 100.0)),
    VitalVariable("sbp", 128.0, 16.0, mean_female=124.0, age_slope=4.0, half_life_min=240.0, measurement_sd=7.0,
                  bounds=(55.0, 250.0)),
    VitalVariable("dbp", 78.0, 10.0, age_slope=-1.5, half_life_min=240.0, measurement_sd=5.0,
                  bounds=(25.0, 150.0)),
)
VITAL_INDEX = {v.name: i for i, v in enumerate(VITALS)}


@dataclass(frozen=True)
class VitalEffect:
    condition: str
    vital: str
    shift: float
    spread: float = 0.4
    fraction: float = 1.0


VITAL_EFFECTS: tuple[VitalEffect, ...] = (
    VitalEffect("beta_blocker", "heartrate", -8.0), VitalEffect("heart_failure", "heartrate", 3.0),
    VitalEffect("copd", "heartrate", 4.0), VitalEffect("sepsis", "heartrate", 24.0),
    VitalEffect("infection", "heartrate", 8.0), VitalEffect("respiratory_failure", "heartrate", 15.0),
    VitalEffect("acute_heart_failure", "heartrate", 10.0), VitalEffect("gi_bleed", "heartrate", 18.0, 0.5),
    VitalEffect("hyperglycaemic_crisis", "heartrate", 15.0), VitalEffect("gastroenteritis", "heartrate", 10.0),
    VitalEffect("alcohol_intoxication", "heartrate", 10.0), VitalEffect("acute_ischaemia", "heartrate", 6.0),
    VitalEffect("aki", "heartrate", 4.0), VitalEffect("atrial_fibrillation", "heartrate", 20.0, 0.9),
    VitalEffect("distress", "heartrate", 12.0, 0.6), VitalEffect("distress", "sbp", 8.0, 0.6),
    VitalEffect("distress", "resprate", 2.0, 0.6),
    # issue 14: hyperdynamic circulation in cirrhosis; the ventricular rate of flutter and of complete AV block
    VitalEffect("liver_disease", "heartrate", 6.0), VitalEffect("atrial_flutter", "heartrate", 25.0, 0.6),
    VitalEffect("av_block_complete", "heartrate", -32.0, 0.2),
    VitalEffect("infection", "temperature", 1.6, 0.5), VitalEffect("sepsis", "temperature", 1.6, 0.6, 0.85),
    VitalEffect("sepsis", "temperature", -3.0, 0.4, 0.12),
    VitalEffect("copd", "resprate", 2.0), VitalEffect("heart_failure", "resprate", 1.0),
    VitalEffect("sepsis", "resprate", 6.0), VitalEffect("respiratory_failure", "resprate", 9.0),
    VitalEffect("acute_heart_failure", "resprate", 6.0), VitalEffect("infection", "resprate", 2.0),
    VitalEffect("hyperglycaemic_crisis", "resprate", 6.0), VitalEffect("acute_ischaemia", "resprate", 2.0),
    VitalEffect("gi_bleed", "resprate", 2.0),
    VitalEffect("copd", "o2sat", -2.5), VitalEffect("heart_failure", "o2sat", -0.7),
    VitalEffect("respiratory_failure", "o2sat", -8.0, 0.5), VitalEffect("sepsis", "o2sat", -2.0),
    VitalEffect("acute_heart_failure", "o2sat", -4.0), VitalEffect("infection", "o2sat", -1.5),
    VitalEffect("hypertension", "sbp", 14.0), VitalEffect("ckd", "sbp", 5.0), VitalEffect("ckd_esrd", "sbp", 8.0),
    VitalEffect("liver_disease", "sbp", -8.0), VitalEffect("heart_failure", "sbp", -3.0),
    VitalEffect("sepsis", "sbp", -22.0, 0.6), VitalEffect("gi_bleed", "sbp", -18.0, 0.6),
    VitalEffect("acute_heart_failure", "sbp", 12.0, 1.0), VitalEffect("hyperglycaemic_crisis", "sbp", -8.0),
    VitalEffect("gastroenteritis", "sbp", -10.0), VitalEffect("acute_ischaemia", "sbp", 5.0),
    VitalEffect("alcohol_intoxication", "sbp", 4.0), VitalEffect("respiratory_failure", "sbp", 6.0),
    VitalEffect("hypertension", "dbp", 7.0), VitalEffect("liver_disease", "dbp", -4.0),
    VitalEffect("sepsis", "dbp", -14.0, 0.6), VitalEffect("gi_bleed", "dbp", -9.0, 0.6),
    VitalEffect("acute_heart_failure", "dbp", 7.0, 1.0), VitalEffect("gastroenteritis", "dbp", -5.0),
)
ANAEMIA_BPM_PER_G_DL = 2.0  # compensatory tachycardia below 12.5 g/dL
FEVER_BPM_PER_DEG_F = 4.4  # ~8 bpm per °C (Liebermeister's rule)
NORMAL_TEMPERATURE_F = 98.6


class VitalTruthModel:
    """Per-visit noise for every vital; `evaluate` maps conditions (+ haemoglobin) to true vitals."""

    def __init__(self, patient: NDArray[np.int64], n_patients: int, age: FloatArray, female: BoolArray,
                 rng: np.random.Generator) -> None:
        n, k = patient.size, len(VITALS)
        person = rng.standard_normal((n_patients, k))[patient]
        visit = rng.standard_normal((n, k))
        self._baseline = np.empty((n, k))
        for j, var in enumerate(VITALS):
            mean = var.mean if var.mean_female is None else np.where(female, var.mean_female, var.mean)
            self._baseline[:, j] = mean + var.age_slope * (age - 60.0) / 10.0 + var.sd * (
                0.7 * person[:, j] + 0.71 * visit[:, j])
        self._z = rng.standard_normal((n, len(VITAL_EFFECTS)))
        self._u = rng.random((n, len(VITAL_EFFECTS)))

    def evaluate(self, flags: Mapping[str, BoolArray], hb_chronic: FloatArray, hb_arrival: FloatArray,
                 rows: NDArray[np.int64] | None = None) -> tuple[FloatArray, FloatArray]:
        """(chronic, arrival) true vitals, visits × VITALS (only `rows` when given; inputs then per row)."""
        index = slice(None) if rows is None else rows
        chronic = self._baseline[index].copy()
        u, z = self._u[index], self._z[index]
        acute = np.zeros_like(chronic)
        for k, effect in enumerate(VITAL_EFFECTS):
            carrier = flags[effect.condition] & (u[:, k] < effect.fraction)
            shift = effect.shift * np.maximum(1.0 + effect.spread * z[:, k], 0.0)
            target = chronic if effect.condition in CHRONIC_CONDITIONS else acute
            target[:, VITAL_INDEX[effect.vital]] += np.where(carrier, shift, 0.0)
        hr = VITAL_INDEX["heartrate"]
        chronic[:, hr] += ANAEMIA_BPM_PER_G_DL * np.maximum(12.5 - hb_chronic, 0.0)
        acute[:, hr] += ANAEMIA_BPM_PER_G_DL * (np.maximum(12.5 - hb_arrival, 0.0)
                                                - np.maximum(12.5 - hb_chronic, 0.0))
        fever = np.maximum(chronic[:, VITAL_INDEX["temperature"]] + acute[:, VITAL_INDEX["temperature"]]
                           - NORMAL_TEMPERATURE_F, 0.0)
        acute[:, hr] += FEVER_BPM_PER_DEG_F * fever
        arrival = chronic + acute
        for j, var in enumerate(VITALS):
            chronic[:, j] = np.clip(chronic[:, j], *var.bounds)
            arrival[:, j] = np.clip(arrival[:, j], *var.bounds)
        return chronic, arrival


def vitals_at(chronic: FloatArray, arrival: FloatArray, visit: NDArray[np.int64],
              minutes: FloatArray) -> FloatArray:
    """True vitals (rows × VITALS) at `minutes` after arrival; NaN minutes = outside a stay (chronic)."""
    m = np.asarray(minutes, dtype=np.float64)
    outside = np.isnan(m)
    m = np.nan_to_num(m, nan=0.0)
    half_lives = np.array([v.half_life_min for v in VITALS])
    factor = 0.5 ** (np.maximum(m[:, None] - 20.0, 0.0) / half_lives[None, :])
    factor[outside] = 0.0
    return chronic[visit] + (arrival[visit] - chronic[visit]) * factor


SEVERITY_WEIGHTS: dict[str, float] = {
    "stemi": 2.5, "sepsis": 2.0, "respiratory_failure": 2.0, "nstemi": 1.5, "acute_heart_failure": 1.2,
    "gi_bleed": 1.0, "hyperglycaemic_crisis": 1.0, "aki": 0.8, "new_onset_af": 0.8, "infection": 0.4,
    "hypercalcaemic_process": 0.5,
}
MINOR_PROBLEMS = frozenset({"laceration", "back_pain", "headache", "anxiety", "other"})


def severity_score(flags: Mapping[str, BoolArray], arrival_vitals: FloatArray,
                   potassium: FloatArray) -> FloatArray:
    """How sick the patient looks on arrival; drives acuity, admission, number of ECGs and labs."""
    s = np.zeros(arrival_vitals.shape[0])
    for name, weight in SEVERITY_WEIGHTS.items():
        s += weight * flags[name]
    s += 1.0 * (arrival_vitals[:, VITAL_INDEX["heartrate"]] > 120)
    s += 1.0 * (arrival_vitals[:, VITAL_INDEX["sbp"]] < 90)
    s += 1.0 * (arrival_vitals[:, VITAL_INDEX["o2sat"]] < 90)
    s += 1.0 * (potassium > 6.0) + 0.7 * (potassium < 2.9)
    return s


def triage_acuity(severity: FloatArray, problem: NDArray[np.object_], rng: np.random.Generator) -> FloatArray:
    """Emergency Severity Index 1 (resuscitation) … 5 (non-urgent)."""
    minor = np.isin(problem, list(MINOR_PROBLEMS))
    chest = np.isin(problem, ["chest_pain_cardiac", "chest_pain_other"])
    # sqrt: the first organ failure moves acuity most; ~6/23/45/23/3 % for ESI 1-5 in this population
    raw = 3.3 - 0.7 * np.sqrt(severity) + 0.8 * minor - 0.7 * chest + rng.normal(0.0, 0.5, severity.size)
    return np.clip(np.round(raw), 1.0, 5.0)


CHIEF_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "chest_pain_cardiac": ("Chest pain", "CHEST PAIN", "Chest pain, Dyspnea", "Chest pressure"),
    "chest_pain_other": ("Chest pain", "CHEST PAIN", "L Chest pain", "Chest pain, Cough"),
    "sepsis": ("Fever", "Altered mental status", "Weakness", "Hypotension", "Fever, Cough"),
    "dyspnoea": ("Dyspnea", "SOB", "Shortness of breath", "Dyspnea, Cough"),
    "gi_bleed": ("BRBPR", "Melena", "Hematemesis", "GI bleed"),
    "hyperglycaemia": ("Hyperglycemia", "Elevated blood sugar", "Weakness"),
    "palpitations": ("Palpitations", "Tachycardia", "Palpitations, Dizziness"),
    "weakness": ("Weakness", "Generalized weakness", "Fatigue"),
    "infection": ("Fever", "Cough", "Dysuria", "Cellulitis", "Fever, Cough"),
    "vomiting": ("N/V", "Vomiting", "Diarrhea", "N/V/D", "Abd pain, N/V"),
    "intoxication": ("ETOH", "Etoh intoxication", "ETOH, Fall"),
    "abdominal_pain": ("Abd pain", "Abdominal pain", "RLQ abdominal pain", "Epigastric pain"),
    "fall": ("s/p Fall", "Fall", "S/P FALL", "Fall, Head injury"),
    "syncope": ("Syncope", "s/p Syncope", "Presyncope"),
    "dizziness": ("Dizziness", "Lightheaded", "Vertigo"),
    "headache": ("Headache", "HEADACHE", "Migraine"),
    "back_pain": ("Back pain", "Low back pain", "BACK PAIN"),
    "laceration": ("Laceration", "Hand laceration", "Facial laceration"),
    "anxiety": ("Anxiety", "Panic attack", "Psych eval"),
    "other": ("Transfer", "Abnormal labs", "Rash", "Leg swelling", "Eye pain"),
}
RHYTHM_LABELS = {"sinus": "Sinus Rhythm", "tachy": "Sinus Tachycardia", "af": "Atrial Fibrillation"}


def _format(values: FloatArray, decimals: int) -> FloatArray:
    return np.round(values, decimals)


def triage_table(subject_id: NDArray[np.int64], stay_id: NDArray[np.int64], true_arrival: FloatArray,
                 acuity: FloatArray, problem: NDArray[np.object_], rng: np.random.Generator) -> pl.DataFrame:
    n = subject_id.size
    columns: dict[str, object] = {"subject_id": subject_id, "stay_id": stay_id}
    for j, var in enumerate(VITALS):
        measured = _format(np.clip(true_arrival[:, j] + rng.normal(0, var.measurement_sd, n), *var.bounds),
                           var.decimals)
        missing = rng.random(n) < (0.05 if var.name == "temperature" else 0.02)
        columns[var.name] = np.where(missing, np.nan, measured)
    pain_missing = rng.random(n) < 0.06
    pain = rng.integers(0, 11, n).astype(str).astype(object)
    pain[rng.random(n) < 0.03] = "UTA"
    columns["pain"] = strings(with_nulls(pain, pain_missing))
    columns["acuity"] = np.where(rng.random(n) < 0.015, np.nan, acuity)
    complaint = np.empty(n, dtype=object)
    pick = rng.random(n)
    for name, options in CHIEF_COMPLAINTS.items():
        rows = problem == name
        complaint[rows] = np.array(options, dtype=object)[np.floor(pick[rows] * len(options)).astype(int)]
    columns["chiefcomplaint"] = strings(complaint)
    frame = pl.DataFrame({k: columns[k] for k in TRIAGE_COLUMNS}, strict=False)
    return frame.with_columns(
        [pl.col(c).fill_nan(None) for c in ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "acuity")]
    )


def vitalsign_table(subject_id: NDArray[np.int64], stay_id: NDArray[np.int64], intime: NDArray[np.int64],
                    outtime: NDArray[np.int64], chronic: FloatArray, arrival: FloatArray,
                    atrial_fibrillation: BoolArray, rng: np.random.Generator) -> pl.DataFrame:
    """Monitor rows from ~10 min after arrival every 30–120 min until the patient leaves (≤ 12 rows)."""
    n = subject_id.size
    los = (outtime - intime).astype(np.float64)
    n_rows = np.clip(np.floor((los - 10.0) / 75.0).astype(np.int64) + 1, 1, 12)
    visit = np.repeat(np.arange(n), n_rows)
    starts = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    step = rng.uniform(30.0, 120.0, visit.size)
    first = np.zeros(visit.size, dtype=bool)
    first[starts] = True
    step[first] = rng.uniform(2.0, 25.0, n)
    cum = np.cumsum(step)
    minutes = np.floor(cum - np.repeat(cum[starts] - step[starts], n_rows))
    keep = minutes < los[visit]
    keep[starts] = True
    visit, minutes = visit[keep], minutes[keep]
    truth = vitals_at(chronic, arrival, visit, minutes)
    m = visit.size
    columns: dict[str, object] = {
        "subject_id": subject_id[visit], "stay_id": stay_id[visit],
        "charttime": minutes_to_datetime(intime[visit] + minutes.astype(np.int64)),
    }
    missing_rate = {"temperature": 0.35, "heartrate": 0.03, "resprate": 0.05, "o2sat": 0.05, "sbp": 0.04,
                    "dbp": 0.04}
    for j, var in enumerate(VITALS):
        sd = var.measurement_sd * (np.where(atrial_fibrillation[visit], 2.5, 1.0) if var.name == "heartrate" else 1.0)
        measured = _format(np.clip(truth[:, j] + rng.normal(0, 1, m) * sd, *var.bounds), var.decimals)
        columns[var.name] = np.where(rng.random(m) < missing_rate[var.name], np.nan, measured)
    rhythm = np.where(atrial_fibrillation[visit], RHYTHM_LABELS["af"],
                      np.where(truth[:, VITAL_INDEX["heartrate"]] > 100, RHYTHM_LABELS["tachy"],
                               RHYTHM_LABELS["sinus"])).astype(object)
    columns["rhythm"] = strings(with_nulls(rhythm, rng.random(m) >= 0.07))
    pain = rng.integers(0, 11, m).astype(str).astype(object)
    columns["pain"] = strings(with_nulls(pain, rng.random(m) >= 0.6))
    frame = pl.DataFrame({k: columns[k] for k in VITALSIGN_COLUMNS}, strict=False)
    return frame.with_columns([pl.col(v.name).fill_nan(None) for v in VITALS])
