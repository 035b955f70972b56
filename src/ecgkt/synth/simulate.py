"""The in-memory simulation: every latent variable and every MIMIC table except the rendered ECGs.

Order of causation (each step only reads earlier ones):
patients → chronic conditions → ED visits → acute conditions → true labs → lab-defined states →
true vitals → severity → ECG times → stay outcome (admission, LOS, death) → ECG parameters, lab
draws, vital-sign rows, triage, diagnosis codes, biometrics.

Every step has its own named random stream, so the whole simulation is a pure function of
(n_patients, seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.synth import diagnoses, lab_truth, labs, omr, tables, timeline, vitals
from ecgkt.synth.conduction import PATIENT_CONDUCTION_NAMES, sample_patient_conduction, sample_visit_conduction
from ecgkt.synth.ecg_inputs import make_ecg_inputs
from ecgkt.synth.ecg_mapping import EcgInputs, EcgNoise, ecg_parameter_arrays, to_parameters
from ecgkt.synth.fingerprint import PatientEcgTraits, sample_patient_traits
from ecgkt.synth.physiology import (
    ChronicState,
    VisitState,
    lab_defined_flags,
    sample_chronic,
    sample_visit_states,
)
from ecgkt.synth.records import RecordJob
from ecgkt.synth.streams import stream

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
N_CARTS = 40


@dataclass
class Simulation:
    """Everything generated for one (n_patients, seed), before rendering."""

    seed: int
    patients: timeline.Patients
    chronic: ChronicState
    visits: timeline.Visits
    states: VisitState
    lab_model: lab_truth.LabTruthModel
    lab_chronic: FloatArray
    lab_arrival: FloatArray
    arrival_labs: dict[str, FloatArray]
    vital_model: vitals.VitalTruthModel
    vital_chronic: FloatArray
    vital_arrival: FloatArray
    severity: FloatArray
    acuity: FloatArray
    schedule: timeline.EcgSchedule
    stays: timeline.Stays
    record_truth: dict[str, FloatArray]  # true K, Ca, Mg, HR at each ECG
    ecg_arrays: dict[str, NDArray[np.generic]]
    jobs: list[RecordJob]
    cart_id: NDArray[np.int64]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    # What the ECG mapping read, kept so that counterfactuals can re-render with every draw fixed.
    ecg_traits: PatientEcgTraits | None = None
    ecg_inputs: EcgInputs | None = None
    ecg_noise: EcgNoise | None = None
    record_visit: NDArray[np.int64] | None = None  # visit whose state each record shows (nearest for outpatient)

    @property
    def visit_female(self) -> BoolArray:
        return self.patients.female[self.visits.patient]


def simulate(n_patients: int, seed: int) -> Simulation:
    """Run the whole latent model and build all tables except machine_measurements."""
    patients = timeline.sample_patients(n_patients, stream(seed, "patients"))
    chronic = sample_chronic(patients.age_first_visit, patients.female, patients.black, patients.bmi,
                             stream(seed, "chronic"))
    chronic.flags.update(sample_patient_conduction(chronic.flags, patients.age_first_visit, patients.female,
                                                   patients.black, patients.bmi, stream(seed, "conduction_patient")))
    visits = timeline.sample_visits(patients, 0.6 * np.exp(0.3 * chronic.burden()), stream(seed, "visits"))
    p = visits.patient
    female, black, bmi = patients.female[p], patients.black[p], patients.bmi[p]
    states = sample_visit_states(chronic, p, visits.age, female, black, bmi, stream(seed, "acute"))

    lab_model = lab_truth.LabTruthModel(p, patients.n, visits.age, female, stream(seed, "lab_truth"))
    lab_chronic, lab_arrival = lab_model.evaluate(states.flags)
    arrival_labs = lab_truth.arrival_values(lab_arrival)
    chronic_labs = lab_truth.derive(lab_truth.to_natural(lab_chronic))
    states.flags.update(lab_defined_flags(arrival_labs, female))
    states.flags.update(sample_visit_conduction(states.flags, visits.age, female, black, bmi,
                                                stream(seed, "conduction_visit")))

    vital_model = vitals.VitalTruthModel(p, patients.n, visits.age, female, stream(seed, "vital_truth"))
    vital_chronic, vital_arrival = vital_model.evaluate(states.flags, chronic_labs["Hemoglobin"],
                                                        arrival_labs["Hemoglobin"])
    severity = vitals.severity_score(states.flags, vital_arrival, arrival_labs["Potassium"])
    flags = states.flags
    schedule = timeline.schedule_ecgs(
        patients, visits, 0.5 * severity + 0.8 * flags["atrial_fibrillation"] + 0.8 * flags["acute_ischaemia"],
        stream(seed, "ecg_schedule"))
    age10 = (visits.age - 60.0) / 10.0
    burden = chronic.burden()[p]
    stays = timeline.finish_stays(
        patients, visits, schedule,
        admit_logit=-1.9 + 0.35 * age10 + 1.0 * severity + 0.3 * burden,
        death_logit=-5.2 + 0.8 * severity + 0.4 * age10, rng=stream(seed, "stays"))
    outcome_rng = stream(seed, "outcomes")
    death_risk = 1.0 / (1.0 + np.exp(-(-4.2 + 0.5 * (patients.age_first_visit - 60.0) / 10.0
                                       + 0.6 * chronic.flags["malignancy"] + 0.5 * chronic.flags["heart_failure"])))
    death_day = tables.death_days(patients, visits, stays, death_risk, outcome_rng)
    schedule = _drop_ecgs_after_death(schedule, death_day)
    acuity = vitals.triage_acuity(severity, states.presenting_problem, stream(seed, "triage_acuity"))

    traits = sample_patient_traits(patients.n, stream(seed, "ecg_fingerprint"))
    record_truth, ecg_arrays, ecg_inputs, ecg_noise, record_visit = _ecg_parameters(
        patients, visits, states, schedule, lab_chronic, lab_arrival, vital_chronic, vital_arrival, traits, seed)
    params = to_parameters(ecg_arrays)
    jobs = [RecordJob(index=i, subject_id=int(patients.subject_id[schedule.patient[i]]),
                      study_id=int(schedule.study_id[i]), ecg_minute=int(schedule.ecg_time[i]), params=params[i])
            for i in range(schedule.n)]
    carts = stream(seed, "carts").integers(6_000_000, 6_999_999, N_CARTS)
    cart_id = carts[stream(seed, "cart_choice").integers(0, N_CARTS, schedule.n)]

    sim = Simulation(
        seed=seed, patients=patients, chronic=chronic, visits=visits, states=states, lab_model=lab_model,
        lab_chronic=lab_chronic, lab_arrival=lab_arrival, arrival_labs=arrival_labs, vital_model=vital_model,
        vital_chronic=vital_chronic, vital_arrival=vital_arrival, severity=severity, acuity=acuity,
        schedule=schedule, stays=stays, record_truth=record_truth, ecg_arrays=ecg_arrays, jobs=jobs,
        cart_id=cart_id, ecg_traits=traits, ecg_inputs=ecg_inputs, ecg_noise=ecg_noise, record_visit=record_visit,
    )
    sim.tables = _build_tables(sim, death_day)
    return sim


def _drop_ecgs_after_death(schedule: timeline.EcgSchedule, death_day: FloatArray) -> timeline.EcgSchedule:
    death_minute = np.where(np.isnan(death_day), np.inf, (np.nan_to_num(death_day) + 1) * timeline.MINUTES_PER_DAY)
    keep = schedule.ecg_time < death_minute[schedule.patient]
    return timeline.EcgSchedule(
        patient=schedule.patient[keep], visit=schedule.visit[keep], ecg_time=schedule.ecg_time[keep],
        minutes_since_intime=schedule.minutes_since_intime[keep], kind=schedule.kind[keep],
        study_id=schedule.study_id[keep])


def _nearest_visit(schedule: timeline.EcgSchedule, visits: timeline.Visits) -> NDArray[np.int64]:
    """For outpatient ECGs, the same patient's visit closest in time (its chronic state applies)."""
    truth_visit = schedule.visit.copy()
    outside = np.nonzero(truth_visit < 0)[0]
    first = np.searchsorted(visits.patient, schedule.patient[outside], side="left")
    last = np.searchsorted(visits.patient, schedule.patient[outside], side="right")
    for k, i in enumerate(outside):
        candidates = np.arange(first[k], last[k])
        truth_visit[i] = candidates[np.argmin(np.abs(visits.intime[candidates] - schedule.ecg_time[i]))]
    return truth_visit


def _ecg_parameters(patients: timeline.Patients, visits: timeline.Visits, states: VisitState,
                    schedule: timeline.EcgSchedule, lab_chronic: FloatArray, lab_arrival: FloatArray,
                    vital_chronic: FloatArray, vital_arrival: FloatArray, traits: PatientEcgTraits, seed: int,
                    ) -> tuple[dict[str, FloatArray], dict[str, NDArray[np.generic]], EcgInputs, EcgNoise,
                               NDArray[np.int64]]:
    truth_visit = _nearest_visit(schedule, visits)
    in_stay = schedule.visit >= 0
    minutes = schedule.minutes_since_intime
    lab_values = lab_truth.values_at(lab_chronic, lab_arrival, truth_visit, minutes)
    heart_rate = vitals.vitals_at(vital_chronic, vital_arrival, truth_visit, minutes)[:, vitals.VITAL_INDEX[
        "heartrate"]]
    rng = stream(seed, "outpatient_rhythm")
    flags: dict[str, BoolArray] = {}
    for name, values in states.flags.items():
        row_values = values[truth_visit]
        chronic = name in lab_truth.CHRONIC_CONDITIONS or name in PATIENT_CONDUCTION_NAMES
        flags[name] = row_values if chronic else row_values & in_stay
    outpatient_af = flags["af_permanent"] | (flags["af_chronic"] & (rng.random(schedule.n) < 0.45))
    flags["atrial_fibrillation"] = np.where(in_stay, flags["atrial_fibrillation"], outpatient_af)
    p = schedule.patient
    age = patients.age_first_visit[p] + (schedule.ecg_time - patients.first_visit_minute[p]) / (
        365.25 * timeline.MINUTES_PER_DAY)
    inputs = make_ecg_inputs(
        flags=flags, labs=lab_values, heart_rate=heart_rate, age=age, female=patients.female[p], bmi=patients.bmi[p],
        ischaemia_territory=np.where(in_stay, states.ischaemia_territory[truth_visit], "none").astype(object),
        old_mi_territory=states.old_mi_territory[truth_visit], patient=p, traits=traits,
    )
    noise = EcgNoise.draw(schedule.n, stream(seed, "ecg_parameters"))
    arrays = ecg_parameter_arrays(inputs, noise)
    truth = {"potassium": lab_values["Potassium"], "free_calcium": lab_values["Free Calcium"],
             "calcium_total": lab_values["Calcium Total"], "magnesium": lab_values["Magnesium"],
             "heart_rate": heart_rate, "age": age, "hemoglobin": lab_values["Hemoglobin"],
             "albumin": lab_values["Albumin"], "glucose": lab_values["Glucose"],
             "lv_mass_index": inputs.lv_mass_index, "ejection_fraction": inputs.ejection_fraction}
    return truth, arrays, inputs, noise, truth_visit


def _build_tables(sim: Simulation, death_day: FloatArray) -> dict[str, pl.DataFrame]:
    seed, patients, visits, stays, states = sim.seed, sim.patients, sim.visits, sim.stays, sim.states
    p = visits.patient
    female = sim.visit_female
    subject_v = patients.subject_id[p]
    flags = states.flags
    out: dict[str, pl.DataFrame] = {}

    out["mimic-iv/hosp/patients.csv.gz"] = tables.patients_table(patients, death_day)
    out["mimic-iv/hosp/admissions.csv.gz"] = tables.admissions_table(patients, visits, stays,
                                                                     stream(seed, "admissions"))
    out["mimic-iv-ed/ed/edstays.csv.gz"] = tables.edstays_table(patients, visits, stays)

    features = labs.order_features(flags, sim.severity, states.presenting_problem, visits.age)
    ordered = labs.order_panels(features, stream(seed, "lab_orders"))
    events = labs.schedule_draws(ordered, flags, sim.arrival_labs, stream(seed, "lab_draws"))
    out["mimic-iv/hosp/labevents.csv.gz"] = labs.labevents_table(
        events, sim.lab_chronic, sim.lab_arrival, subject_v, stays.hadm_id, visits.intime, stays.outtime,
        stays.admitted, female, stream(seed, "lab_values"))
    out["mimic-iv/hosp/d_labitems.csv.gz"] = labs.d_labitems_table()

    triage_rng = stream(seed, "triage")
    at_triage = vitals.vitals_at(sim.vital_chronic, sim.vital_arrival, np.arange(visits.n),
                                 triage_rng.uniform(0.0, 15.0, visits.n))
    out["mimic-iv-ed/ed/triage.csv.gz"] = vitals.triage_table(
        subject_v, stays.stay_id, at_triage, sim.acuity, states.presenting_problem, triage_rng)
    out["mimic-iv-ed/ed/vitalsign.csv.gz"] = vitals.vitalsign_table(
        subject_v, stays.stay_id, visits.intime, stays.outtime, sim.vital_chronic, sim.vital_arrival,
        flags["atrial_fibrillation"], stream(seed, "vitalsign")).sort(["subject_id", "stay_id", "charttime"])

    coding_rng = stream(seed, "coding")
    code_flags = diagnoses.coding_flags(
        flags, states.ckd_stage, states.ischaemia_territory, sim.arrival_labs,
        sim.vital_arrival[:, vitals.VITAL_INDEX["sbp"]], female, coding_rng)
    severity_values = dict(sim.arrival_labs)
    severity_values["Hemoglobin Deficit"] = np.where(female, 12.0, 13.0) - sim.arrival_labs["Hemoglobin"]
    coded = diagnoses.assign_codes(code_flags, severity_values, states.presenting_problem, stays.admitted,
                                   visits.age, coding_rng)
    dx = diagnoses.diagnosis_tables(coded, subject_v, stays.stay_id, stays.hadm_id, stays.icd_version, coding_rng)
    out["mimic-iv-ed/ed/diagnosis.csv.gz"] = dx.ed_diagnosis
    out["mimic-iv/hosp/diagnoses_icd.csv.gz"] = dx.diagnoses_icd
    out["mimic-iv/hosp/d_icd_diagnoses.csv.gz"] = dx.d_icd_diagnoses

    out["mimic-iv/hosp/omr.csv.gz"] = omr.omr_table(
        patients.subject_id, p, visits.intime, patients.height_cm, patients.weight_kg,
        flags["acute_heart_failure"], sim.vital_chronic[:, vitals.VITAL_INDEX["sbp"]],
        sim.vital_chronic[:, vitals.VITAL_INDEX["dbp"]], stream(seed, "omr"))

    schedule = sim.schedule
    out["mimic-iv-ecg/record_list.csv"] = tables.record_list_table(
        patients.subject_id[schedule.patient], schedule.study_id, schedule.ecg_time)
    return out
