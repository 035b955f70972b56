"""Who the patients are and when things happen: ids, demographics, ED stays, admissions, ECG times.

MIMIC shifts every date of a patient by one random offset into 2110–2210 and reports an
`anchor_year` / `anchor_age` / `anchor_year_group`; this module does the same. Identifiers live in
MIMIC's ranges (subject 1xxxxxxx, hadm 2xxxxxxx, stay 3xxxxxxx, study 4xxxxxxx). ECG timing follows
the MDS-ED matching rule the builder applies (an ECG belongs to a stay when
`intime <= ecg_time <= intime + 90 min`): most ECGs fall inside that window, some later in the stay,
and some are outpatient ECGs outside every stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MINUTES_PER_DAY = 24 * 60
MATCH_WINDOW_MINUTES = 90
ICD10_SWITCH_YEAR = 2015.75  # US hospitals moved from ICD-9-CM to ICD-10-CM on 1 October 2015

# MIMIC-IV race strings with their approximate share among ED patients with an ECG.
RACES: tuple[tuple[str, float], ...] = (
    ("WHITE", 0.58), ("BLACK/AFRICAN AMERICAN", 0.18), ("HISPANIC/LATINO - PUERTO RICAN", 0.04),
    ("HISPANIC OR LATINO", 0.03), ("ASIAN", 0.03), ("ASIAN - CHINESE", 0.015),
    ("WHITE - OTHER EUROPEAN", 0.025), ("WHITE - RUSSIAN", 0.01), ("OTHER", 0.035),
    ("UNKNOWN", 0.04), ("UNABLE TO OBTAIN", 0.005), ("PORTUGUESE", 0.01),
)
BLACK_RACES = frozenset({"BLACK/AFRICAN AMERICAN"})
# anchor_year_group (the real 3-year span of the anchor year); weights give ~30 % pre-ICD-10 visits.
ANCHOR_YEAR_GROUPS: tuple[tuple[str, int, float], ...] = (
    ("2008 - 2010", 2008, 0.06), ("2011 - 2013", 2011, 0.20),
    ("2014 - 2016", 2014, 0.36), ("2017 - 2019", 2017, 0.38),
)
SUBJECT_RANGE = (10_000_000, 20_000_000)
HADM_RANGE = (20_000_000, 30_000_000)
STAY_RANGE = (30_000_000, 40_000_000)
STUDY_RANGE = (40_000_000, 50_000_000)


def unique_ids(rng: np.random.Generator, low: int, high: int, n: int, *, sort: bool) -> NDArray[np.int64]:
    """`n` distinct integers in [low, high), sorted or in random order."""
    if n > high - low:
        raise ValueError(f"cannot draw {n} distinct ids from [{low}, {high})")
    ids = np.empty(0, dtype=np.int64)
    while ids.size < n:
        extra = rng.integers(low, high, size=int((n - ids.size) * 1.2) + 16, dtype=np.int64)
        ids = np.unique(np.concatenate([ids, extra]))
    ids = rng.permutation(ids)[:n]
    return np.sort(ids) if sort else ids


def to_minutes(year: NDArray[np.int64]) -> NDArray[np.int64]:
    """Minutes since the Unix epoch of 1 January of each `year`."""
    dates = np.array([f"{int(y):04d}-01-01" for y in np.unique(year)], dtype="datetime64[m]")
    lookup = dict(zip(np.unique(year).tolist(), dates.astype(np.int64).tolist(), strict=True))
    return np.array([lookup[int(y)] for y in year], dtype=np.int64)


def minutes_to_datetime(minutes: NDArray[np.int64]) -> NDArray[np.datetime64]:
    """Minutes since the epoch → datetime64[us] (what Polars stores), minute resolution as in MIMIC."""
    return np.asarray(minutes, dtype=np.int64).astype("datetime64[m]").astype("datetime64[us]")


@dataclass
class Patients:
    """Per-patient columns (index = patient index). Ages are true ages; MIMIC caps reported ones."""

    subject_id: NDArray[np.int64]
    female: NDArray[np.bool_]
    race: NDArray[np.object_]
    black: NDArray[np.bool_]
    age_first_visit: NDArray[np.float64]
    first_visit_minute: NDArray[np.int64]  # minutes since epoch (shifted calendar)
    anchor_year: NDArray[np.int64]
    anchor_age: NDArray[np.int64]
    anchor_year_group: NDArray[np.object_]
    real_year_shift: NDArray[np.float64]  # real year = shifted year + real_year_shift
    height_cm: NDArray[np.float64]
    weight_kg: NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.subject_id.size)

    @property
    def bmi(self) -> NDArray[np.float64]:
        return self.weight_kg / (self.height_cm / 100.0) ** 2


def sample_patients(n: int, rng: np.random.Generator) -> Patients:
    """Demographics of an adult ED population that gets ECGs (older than the ED average)."""
    female = rng.random(n) < 0.49
    age = np.clip(18.0 + 77.0 * rng.beta(2.4, 1.9, n), 18.0, 95.0)
    race_names = np.array([r for r, _ in RACES], dtype=object)
    race_p = np.array([p for _, p in RACES])
    race = race_names[rng.choice(len(RACES), size=n, p=race_p / race_p.sum())]
    height = np.where(female, rng.normal(162.0, 6.5, n), rng.normal(176.0, 7.0, n))
    bmi = np.clip(np.exp(rng.normal(np.log(27.5), 0.19, n)), 15.0, 60.0)
    weight = bmi * (height / 100.0) ** 2
    anchor_year = rng.integers(2110, 2201, size=n)
    first_minute = (
        to_minutes(anchor_year)
        + rng.integers(0, 364, size=n) * MINUTES_PER_DAY
        + _arrival_minute_of_day(rng, n)
    )
    group_idx = rng.choice(len(ANCHOR_YEAR_GROUPS), size=n,
                           p=np.array([w for *_, w in ANCHOR_YEAR_GROUPS]))
    group_names = np.array([g for g, *_ in ANCHOR_YEAR_GROUPS], dtype=object)[group_idx]
    real_anchor = np.array([s for _, s, _ in ANCHOR_YEAR_GROUPS])[group_idx] + rng.integers(0, 3, size=n)
    anchor_age = np.floor(age).astype(np.int64)
    anchor_age = np.where(anchor_age > 89, 91, anchor_age)  # MIMIC reports every age above 89 as 91
    subject_id = unique_ids(rng, *SUBJECT_RANGE, n, sort=True)
    return Patients(
        subject_id=subject_id, female=female, race=race,
        black=np.isin(race, list(BLACK_RACES)), age_first_visit=age,
        first_visit_minute=first_minute, anchor_year=anchor_year, anchor_age=anchor_age,
        anchor_year_group=group_names, real_year_shift=(real_anchor - anchor_year).astype(np.float64),
        height_cm=height, weight_kg=weight,
    )


def _arrival_minute_of_day(rng: np.random.Generator, n: int) -> NDArray[np.int64]:
    """ED arrivals peak late morning to evening and are rare at night."""
    hours = np.mod(rng.normal(14.0, 5.0, n), 24.0)
    return np.floor(hours * 60.0).astype(np.int64)


@dataclass
class Visits:
    """Per-ED-stay columns (index = visit index); times are minutes since the epoch."""

    patient: NDArray[np.int64]
    intime: NDArray[np.int64]
    age: NDArray[np.float64]
    visit_number: NDArray[np.int64]  # 0 for the patient's first ED visit

    @property
    def n(self) -> int:
        return int(self.patient.size)


def sample_visits(patients: Patients, extra_visit_mean: NDArray[np.float64],
                  rng: np.random.Generator) -> Visits:
    """Several ED visits per patient, more for the chronically ill, ≥ 30 days apart.

    `extra_visit_mean` is the expected number of visits beyond the first (from physiology:
    chronic disease brings people back).
    """
    gamma = rng.gamma(1.0, extra_visit_mean)
    n_visits = 1 + np.minimum(rng.poisson(gamma), 11)
    patient = np.repeat(np.arange(patients.n), n_visits)
    starts = np.concatenate([[0], np.cumsum(n_visits)[:-1]])
    visit_number = np.arange(patient.size) - np.repeat(starts, n_visits)
    gap_days = np.where(visit_number == 0, 0.0, 30.0 + rng.exponential(280.0, patient.size))
    gap_minutes = np.floor(gap_days * MINUTES_PER_DAY).astype(np.int64)
    # restart the cumulative sum at every patient's first visit
    cum = np.cumsum(gap_minutes)
    offset = cum - np.repeat(cum[starts], n_visits)
    day_start = patients.first_visit_minute[patient] + offset
    # keep the time of day of arrival realistic for later visits too
    day_start = day_start - np.mod(day_start, MINUTES_PER_DAY) + _arrival_minute_of_day(rng, patient.size)
    day_start = np.where(visit_number == 0, patients.first_visit_minute[patient], day_start)
    keep = offset < 9 * 365 * MINUTES_PER_DAY  # a patient's shifted dates span under a decade
    patient, day_start, visit_number = patient[keep], day_start[keep], visit_number[keep]
    age = patients.age_first_visit[patient] + (day_start - patients.first_visit_minute[patient]) / (
        365.25 * MINUTES_PER_DAY)
    return Visits(patient=patient, intime=day_start, age=age, visit_number=visit_number)


@dataclass
class EcgSchedule:
    """One row per ECG record. `visit` is -1 for outpatient ECGs outside every ED stay."""

    patient: NDArray[np.int64]
    visit: NDArray[np.int64]
    ecg_time: NDArray[np.int64]
    minutes_since_intime: NDArray[np.float64]  # NaN outside stays
    kind: NDArray[np.object_]  # "window" | "late" | "outside"
    study_id: NDArray[np.int64]

    @property
    def n(self) -> int:
        return int(self.patient.size)


def schedule_ecgs(patients: Patients, visits: Visits, extra_ecg_logit: NDArray[np.float64],
                  rng: np.random.Generator) -> EcgSchedule:
    """ECG times: ~88 % of stays have their first ECG within 90 min of arrival; sicker stays get more.

    Outpatient ECGs (about a third of patients get one or two) are placed at least two days away
    from every stay of the same patient, so the builder cannot match them.
    """
    p_more = 1.0 / (1.0 + np.exp(-(-1.1 + extra_ecg_logit)))
    n_ecg = 1 + (rng.random(visits.n) < p_more) + (rng.random(visits.n) < 0.35 * p_more)
    visit = np.repeat(np.arange(visits.n), n_ecg)
    first_in_window = rng.random(visits.n) < 0.88
    first = np.where(first_in_window,
                     np.minimum(3.0 + rng.gamma(2.0, 11.0, visits.n), 88.0),
                     rng.uniform(95.0, 420.0, visits.n))
    step = 10.0 + rng.gamma(1.5, 40.0, visit.size)  # repeat ECGs: often within the hour, sometimes hours later
    starts = np.concatenate([[0], np.cumsum(n_ecg)[:-1]])
    is_first = np.zeros(visit.size, dtype=bool)
    is_first[starts] = True
    step[is_first] = 0.0
    cum = np.cumsum(step)
    offset = np.floor(first[visit] + cum - np.repeat(cum[starts], n_ecg))
    in_stay_time = visits.intime[visit] + offset.astype(np.int64)
    kind = np.where(offset <= MATCH_WINDOW_MINUTES, "window", "late").astype(object)

    # outpatient ECGs
    has_outside = rng.random(patients.n) < 0.33
    n_outside = has_outside * (1 + (rng.random(patients.n) < 0.3))
    out_patient = np.repeat(np.arange(patients.n), n_outside)
    # anchor each on a random visit of the patient, then move 3–150 days away
    first_visit_of = np.searchsorted(visits.patient, np.arange(patients.n))
    visits_of = np.bincount(visits.patient, minlength=patients.n)
    anchor_visit = first_visit_of[out_patient] + np.floor(
        rng.random(out_patient.size) * visits_of[out_patient]).astype(np.int64)
    sign = np.where(rng.random(out_patient.size) < 0.5, -1, 1)
    shift_days = rng.uniform(3.0, 150.0, out_patient.size)
    out_time = visits.intime[anchor_visit] + sign * np.floor(shift_days * MINUTES_PER_DAY).astype(np.int64)
    out_time = out_time - np.mod(out_time, MINUTES_PER_DAY) + 8 * 60 + rng.integers(0, 9 * 60, out_patient.size)
    clear = _clear_of_stays(out_patient, out_time, visits, margin_minutes=2 * MINUTES_PER_DAY)
    out_patient, out_time = out_patient[clear], out_time[clear]

    patient_all = np.concatenate([visits.patient[visit], out_patient])
    visit_all = np.concatenate([visit, np.full(out_patient.size, -1)])
    time_all = np.concatenate([in_stay_time, out_time])
    minutes = np.concatenate([offset, np.full(out_patient.size, np.nan)])
    kind_all = np.concatenate([kind, np.full(out_patient.size, "outside", dtype=object)])
    order = np.lexsort((time_all, patient_all))
    study_id = unique_ids(rng, *STUDY_RANGE, order.size, sort=False)
    return EcgSchedule(
        patient=patient_all[order], visit=visit_all[order], ecg_time=time_all[order],
        minutes_since_intime=minutes[order], kind=kind_all[order], study_id=study_id,
    )


def _clear_of_stays(patient: NDArray[np.int64], time: NDArray[np.int64], visits: Visits,
                    margin_minutes: int) -> NDArray[np.bool_]:
    """True where `time` is more than `margin_minutes` from every stay start of the same patient."""
    clear = np.ones(patient.size, dtype=bool)
    order = np.argsort(visits.patient, kind="stable")
    vp, vt = visits.patient[order], visits.intime[order]
    lo = np.searchsorted(vp, patient, side="left")
    hi = np.searchsorted(vp, patient, side="right")
    for i in range(patient.size):
        clear[i] = bool(np.all(np.abs(vt[lo[i]:hi[i]] - time[i]) > margin_minutes))
    return clear


@dataclass
class Stays:
    """What happened at the end of each ED stay (index = visit index)."""

    outtime: NDArray[np.int64]
    admitted: NDArray[np.bool_]
    hadm_id: NDArray[np.int64]  # -1 when not admitted
    admittime: NDArray[np.int64]
    dischtime: NDArray[np.int64]
    died_in_hospital: NDArray[np.bool_]
    disposition: NDArray[np.object_]
    arrival_transport: NDArray[np.object_]
    icd_version: NDArray[np.int64]
    stay_id: NDArray[np.int64]


ED_DISCHARGE_DISPOSITIONS: tuple[tuple[str, float], ...] = (
    ("HOME", 0.86), ("LEFT WITHOUT BEING SEEN", 0.02), ("TRANSFER", 0.03),
    ("LEFT AGAINST MEDICAL ADVICE", 0.02), ("OTHER", 0.05), ("ELOPED", 0.02),
)


def finish_stays(patients: Patients, visits: Visits, schedule: EcgSchedule,
                 admit_logit: NDArray[np.float64], death_logit: NDArray[np.float64],
                 rng: np.random.Generator) -> Stays:
    """Length of stay, admission and disposition from the visit's severity (given as logits)."""
    n = visits.n
    admitted = rng.random(n) < 1.0 / (1.0 + np.exp(-admit_logit))
    ed_minutes = np.exp(rng.normal(np.log(np.where(admitted, 420.0, 300.0)), 0.45))
    last_ecg = np.zeros(n)
    in_stay = schedule.visit >= 0
    np.maximum.at(last_ecg, schedule.visit[in_stay], schedule.minutes_since_intime[in_stay])
    ed_minutes = np.clip(np.maximum(ed_minutes, last_ecg + 15.0), 60.0, 36 * 60.0)
    outtime = visits.intime + np.floor(ed_minutes).astype(np.int64)
    admittime = visits.intime + np.floor(ed_minutes * rng.uniform(0.55, 0.95, n)).astype(np.int64)
    hosp_days = np.clip(np.exp(rng.normal(np.log(3.5), 0.7, n)), 0.5, 25.0)
    dischtime = admittime + np.floor(hosp_days * MINUTES_PER_DAY).astype(np.int64)
    # a death can only end a patient's last visit: nobody comes back after it
    is_last = np.append(visits.patient[1:] != visits.patient[:-1], True)
    died = admitted & is_last & (rng.random(n) < 1.0 / (1.0 + np.exp(-death_logit)))
    names = np.array([d for d, _ in ED_DISCHARGE_DISPOSITIONS], dtype=object)
    probs = np.array([p for _, p in ED_DISCHARGE_DISPOSITIONS])
    disposition = names[rng.choice(names.size, size=n, p=probs / probs.sum())]
    disposition = np.where(admitted, "ADMITTED", disposition).astype(object)
    ambulance_p = 1.0 / (1.0 + np.exp(-(admit_logit - 0.8)))
    u = rng.random(n)
    arrival = np.where(u < ambulance_p, "AMBULANCE",
                       np.where(u < ambulance_p + 0.02, "OTHER",
                                np.where(u < ambulance_p + 0.03, "UNKNOWN", "WALK IN"))).astype(object)
    real_year = (1970.0 + visits.intime / (365.2425 * MINUTES_PER_DAY)
                 + patients.real_year_shift[visits.patient])
    icd_version = np.where(real_year < ICD10_SWITCH_YEAR, 9, 10).astype(np.int64)
    stay_id = unique_ids(rng, *STAY_RANGE, n, sort=False)
    hadm = np.full(n, -1, dtype=np.int64)
    hadm[admitted] = unique_ids(rng, *HADM_RANGE, int(admitted.sum()), sort=False)
    return Stays(
        outtime=outtime, admitted=admitted, hadm_id=hadm, admittime=admittime,
        dischtime=dischtime, died_in_hospital=died, disposition=disposition,
        arrival_transport=arrival, icd_version=icd_version, stay_id=stay_id,
    )
