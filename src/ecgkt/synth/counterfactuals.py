"""Per-patient ground truth: which lab abnormalities and ECG features each true condition causes *in this ECG*.

`graph.json` says what a latent state does on average (its direct effects, measured by switching it on
and off for a sample of visits). An explanation shown to a clinician is about one patient, so
`ground_truth/patient_drivers.parquet` records, for every ECG taken during an ED stay and every
condition that is true for that stay, the counterfactual "this condition switched off, every random
draw held fixed":

* a lab abnormality `<lab>_<high|low>` is a **driver** of the condition in this ECG when the lab's
  true value at the ECG time is outside its reference range with the condition and inside it without;
* an ECG feature is listed when its value changes (yes/no features: when it flips).

The counterfactual re-runs the generator's own functions (`LabTruthModel.evaluate`,
`VitalTruthModel.evaluate`, `simulate._ecg_parameters`) with the same pre-drawn noise, so it cannot
drift from the code that generated the data. Switching off follows `graph.json`'s interventions:
`ckd` takes its stages with it, `acute_ischaemia` and `stemi` switch off the whole infarct
(STEMI/NSTEMI), other flags are switched alone (conditions that require this one stay as they are:
the effect is direct), and a lab-defined state (hyperkalaemia, ...) is switched off by setting its
lab to the typical normal value of `ground_truth.LAB_STATE_VALUES`.

Reference ranges: the sex-specific range of `ecgkt.mimic.labs` (the cohort builder labels against the
median range in labevents; the two agree except for sex-specific labs near a boundary).

Columns: `study_id`, `subject_id`, `stay_id`, `state`, `kind` ("lab" | "ecg" | "state"), `target`
(`<lab>_<direction>` | ECG feature | "" for the `state` row that marks the condition as true for the
ECG), `direction` ("high"/"low" for labs, "increase"/"decrease" for ECG features), `observed` and
`counterfactual` (lab value at the ECG time or ECG feature value, without the condition).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.synth import lab_truth
from ecgkt.synth.ecg_mapping import ECG_FEATURES
from ecgkt.synth.physiology import LAB_DEFINED_STATES, PATIENT_CONDITIONS, VISIT_CONDITIONS
from ecgkt.synth.simulate import Simulation, _ecg_parameters

__all__ = ["PATIENT_DRIVERS_FILE", "condition_names", "patient_drivers_frame", "write_patient_drivers"]

PATIENT_DRIVERS_FILE = "patient_drivers.parquet"
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
BOOLEAN_ECG = frozenset({"rhythm_af", "t_inversion", "pathological_q", "bbb_lbbb", "bbb_rbbb", "lvh_strain"})
ECG_TOLERANCE = 1e-6  # relative change below which a continuous ECG feature counts as unchanged
# Typical normal value that switches a lab-defined state off (as graph.json's intervention does).
LAB_STATE_NORMAL: dict[str, float] = {
    "hyperkalaemia": 4.2, "hypokalaemia": 4.2, "hypercalcaemia": 9.4, "hypocalcaemia": 9.4,
    "hypomagnesaemia": 2.0, "anaemia": 14.0, "hyponatraemia": 140.0,
}


def condition_names() -> list[str]:
    """Every state the counterfactual is run for (the states of graph.json)."""
    return ([m.name for m in (*PATIENT_CONDITIONS, *VISIT_CONDITIONS)] + ["atrial_fibrillation"]
            + [s.name for s in LAB_DEFINED_STATES])


def _switched_off(flags: dict[str, BoolArray], name: str, visits: BoolArray) -> dict[str, BoolArray]:
    out = {k: v.copy() for k, v in flags.items()}
    group = {"ckd": ("ckd", "ckd_advanced", "ckd_esrd"),
             "acute_ischaemia": ("acute_ischaemia", "stemi", "nstemi"),
             "stemi": ("acute_ischaemia", "stemi", "nstemi")}.get(name, (name,))
    for flag in group:
        if flag in out:
            out[flag] = out[flag] & ~visits
    return out


def _abnormal(values: dict[str, FloatArray], female: BoolArray) -> dict[str, BoolArray]:
    """`<lab>_<direction>` → abnormal at each row, by the sex-specific reference range."""
    out: dict[str, BoolArray] = {}
    for item in LAB_ITEMS:
        if item.name not in values:
            continue
        v = values[item.name]
        low = np.where(female, *(np.nan if x is None else x for x in (item.reference_range(True)[0],
                                                                      item.reference_range(False)[0])))
        high = np.where(female, *(np.nan if x is None else x for x in (item.reference_range(True)[1],
                                                                       item.reference_range(False)[1])))
        if item.ref_low is not None:
            out[f"{item.name}_low"] = v < low
        if item.ref_high is not None:
            out[f"{item.name}_high"] = v > high
    return out


class _World:
    """Labs, vitals and ECG parameters of every ECG of a simulation, for any set of visit flags."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        s = sim.schedule
        self.in_stay = s.visit >= 0
        self.visit = np.maximum(s.visit, 0)
        self.minutes = s.minutes_since_intime.astype(np.float64)
        self.female = sim.patients.female[s.patient]

    def evaluate(self, flags: dict[str, BoolArray], lab_state: tuple[str, BoolArray] | None = None
                 ) -> tuple[dict[str, FloatArray], dict[str, NDArray[np.generic]]]:
        sim = self.sim
        chronic, arrival = sim.lab_model.evaluate(flags)
        if lab_state is not None:
            name, visits = lab_state
            state = next(s for s in LAB_DEFINED_STATES if s.name == name)
            j = lab_truth.PRIMARY_INDEX[state.lab]
            normal = LAB_STATE_NORMAL[name]
            value = np.log(normal) if lab_truth.PRIMARY_VARIABLES[j].scale == "log" else normal
            chronic, arrival = chronic.copy(), arrival.copy()
            chronic[visits, j] = value
            arrival[visits, j] = value
        labs = lab_truth.values_at(chronic, arrival, self.visit, self.minutes)
        hb_chronic = lab_truth.derive(lab_truth.to_natural(chronic))["Hemoglobin"]
        hb_arrival = lab_truth.arrival_values(arrival)["Hemoglobin"]
        vital_chronic, vital_arrival = sim.vital_model.evaluate(flags, hb_chronic, hb_arrival)
        states = dataclasses.replace(sim.states, flags=flags)
        if sim.ecg_traits is None:
            raise ValueError("simulation lacks the stored ECG fingerprint (run ecgkt.synth.simulate.simulate)")
        _, ecg, *_ = _ecg_parameters(sim.patients, sim.visits, states, sim.schedule, chronic, arrival,
                                     vital_chronic, vital_arrival, sim.ecg_traits, sim.seed)
        return labs, ecg


def patient_drivers_frame(sim: Simulation) -> pl.DataFrame:
    """One row per (ECG in a stay, true condition, lab abnormality that disappears / ECG feature that changes)."""
    world = _World(sim)
    flags = sim.states.flags
    labs_obs, ecg_obs = world.evaluate(flags)
    abnormal_obs = _abnormal(labs_obs, world.female)
    s = sim.schedule
    stay_ids = np.where(world.in_stay, sim.stays.stay_id[world.visit], -1)
    subject = sim.patients.subject_id[s.patient]
    rows: dict[str, list[Any]] = {k: [] for k in ("study_id", "subject_id", "stay_id", "state", "kind", "target",
                                                  "direction", "observed", "counterfactual")}

    def add(records: NDArray[np.int64], state: str, kind: str, target: str, direction: str,
            observed: FloatArray, counterfactual: FloatArray) -> None:
        rows["study_id"].extend(s.study_id[records].tolist())
        rows["subject_id"].extend(subject[records].tolist())
        rows["stay_id"].extend(stay_ids[records].tolist())
        n = records.size
        rows["state"].extend([state] * n)
        rows["kind"].extend([kind] * n)
        rows["target"].extend([target] * n)
        rows["direction"].extend([direction] * n)
        rows["observed"].extend(np.asarray(observed, dtype=np.float64).tolist())
        rows["counterfactual"].extend(np.asarray(counterfactual, dtype=np.float64).tolist())

    lab_defined = {st.name for st in LAB_DEFINED_STATES}
    for name in condition_names():
        true_visits = np.asarray(flags[name], dtype=bool)
        records_true = world.in_stay & true_visits[world.visit]
        if not records_true.any():
            continue
        if name in lab_defined:
            labs_off, ecg_off = world.evaluate(flags, lab_state=(name, true_visits))
        else:
            labs_off, ecg_off = world.evaluate(_switched_off(flags, name, true_visits))
        idx = np.flatnonzero(records_true)
        nan = np.full(idx.size, np.nan)
        add(idx, name, "state", "", "", nan, nan)
        abnormal_off = _abnormal(labs_off, world.female)
        for label, obs in abnormal_obs.items():
            gone = np.flatnonzero(records_true & obs & ~abnormal_off[label])
            if gone.size:
                lab, direction = label.rsplit("_", 1)
                add(gone, name, "lab", label, direction, labs_obs[lab][gone], labs_off[lab][gone])
        for feature in ECG_FEATURES:
            a = np.asarray(ecg_obs[feature], dtype=np.float64)
            b = np.asarray(ecg_off[feature], dtype=np.float64)
            changed = np.abs(a - b) > ECG_TOLERANCE * np.maximum(1.0, np.abs(b))
            changed = records_true & changed & np.isfinite(a) & np.isfinite(b)
            if feature in BOOLEAN_ECG:
                changed &= (a > 0.5) != (b > 0.5)
            hits = np.flatnonzero(changed)
            for direction, mask in (("increase", a[hits] > b[hits]), ("decrease", a[hits] < b[hits])):
                if mask.any():
                    add(hits[mask], name, "ecg", feature, direction, a[hits[mask]], b[hits[mask]])
    return pl.DataFrame(rows, schema={"study_id": pl.Int64, "subject_id": pl.Int64, "stay_id": pl.Int64,
                                      "state": pl.String, "kind": pl.String, "target": pl.String,
                                      "direction": pl.String, "observed": pl.Float64,
                                      "counterfactual": pl.Float64})


def write_patient_drivers(sim: Simulation, folder: Path) -> Path:
    """Write `patient_drivers.parquet` into the ground-truth folder."""
    path = Path(folder) / PATIENT_DRIVERS_FILE
    patient_drivers_frame(sim).write_parquet(path, statistics=False)
    return path
