"""`DIR/ground_truth/`: the latent state of every visit and record, and the graph of what drives what.

Files (none of them is read by the cohort builder; they exist to check models and explanations):

* `visits.parquet` — one row per ED stay: ids, intime, age, sex, every latent condition (bool),
  `ckd_stage`, `ischaemia_territory`, `presenting_problem`, severity, acuity, admission, ICD version,
  `true_<lab>` (value at the acute peak, natural units, all 45 labs) and `true_<vital>` at arrival.
* `records.parquet` — one row per ECG: ids, `kind` (window / late / outside), minutes since intime,
  true potassium / calcium / magnesium / heart rate at the ECG and the `EcgParameters` it was rendered
  with.
* `graph.json` — nodes (states with level, kind, description, visit prevalence) and edges:
  `state_edges` (risk factors, log-odds from the condition models), `lab_effects`
  (state → lab item with direction "high"/"low"), `vital_effects`, `ecg_effects`
  (state → ECG parameter "increase"/"decrease") and `icd_codes` (state → ICD-10-CM / ICD-9-CM codes).

Effects are *measured by intervention* on the generator itself: for every state, all visits are
re-evaluated with the state forced on and forced off, holding every random draw fixed, and an edge
is kept when the standardised mean difference is at least `EFFECT_SIZE_THRESHOLD` (for yes/no ECG
features: a change in proportion of at least `PROPORTION_THRESHOLD`). Lab-defined states
(hyperkalaemia, …) are intervened on by setting their lab to a typical abnormal vs normal value.
So the graph cannot drift from the code that generates the data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_BY_NAME
from ecgkt.synth import diagnoses, lab_truth, vitals
from ecgkt.synth.columns import nullable_ids, strings
from ecgkt.synth.conduction import PATIENT_CONDUCTION, VISIT_CONDUCTION
from ecgkt.synth.ecg_inputs import make_ecg_inputs
from ecgkt.synth.ecg_mapping import BOOLEAN_FEATURES, ECG_FEATURES, EcgNoise, ecg_parameter_arrays
from ecgkt.synth.physiology import (
    LAB_DEFINED_STATES,
    PATIENT_CONDITIONS,
    REPORTED_STATES,
    VISIT_CONDITIONS,
    ConditionModel,
)
from ecgkt.synth.simulate import Simulation
from ecgkt.synth.streams import stream
from ecgkt.synth.timeline import minutes_to_datetime

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
EFFECT_SIZE_THRESHOLD = 0.2
PROPORTION_THRESHOLD = 0.1
MAX_INTERVENTION_VISITS = 2000
SCHEMA_VERSION = 1
BOOLEAN_ECG_FEATURES = BOOLEAN_FEATURES
LOG_LABS = frozenset({v.name for v in lab_truth.PRIMARY_VARIABLES if v.scale == "log"}
                     | {"PT", "Bilirubin Direct", "Absolute Lymphocyte Count", "Absolute Eosinophil Count",
                        "Absolute Basophil Count"})
# Typical abnormal vs normal value used to intervene on lab-defined states.
LAB_STATE_VALUES: dict[str, tuple[float, float]] = {
    "hyperkalaemia": (6.3, 4.2), "hypokalaemia": (2.9, 4.2), "hypercalcaemia": (12.0, 9.4),
    "hypocalcaemia": (7.6, 9.4), "hypomagnesaemia": (1.2, 2.0), "anaemia": (9.0, 14.0),
    "hyponatraemia": (126.0, 140.0),
}
ALL_PATIENT_MODELS = (*PATIENT_CONDITIONS, *PATIENT_CONDUCTION)
ALL_VISIT_MODELS = (*VISIT_CONDITIONS, *VISIT_CONDUCTION)
MODELS: dict[str, ConditionModel] = {m.name: m for m in (*ALL_PATIENT_MODELS, *ALL_VISIT_MODELS)}


def visits_frame(sim: Simulation) -> pl.DataFrame:
    v, st = sim.visits, sim.stays
    columns: dict[str, Any] = {
        "subject_id": sim.patients.subject_id[v.patient], "stay_id": st.stay_id,
        "hadm_id": nullable_ids(st.hadm_id), "intime": minutes_to_datetime(v.intime),
        "age": np.round(v.age, 2), "gender": strings(np.where(sim.visit_female, "F", "M")),
        "presenting_problem": strings(sim.states.presenting_problem),
        "severity": sim.severity, "acuity": sim.acuity, "admitted": st.admitted, "icd_version": st.icd_version,
        "ckd_stage": sim.states.ckd_stage, "ischaemia_territory": strings(sim.states.ischaemia_territory),
    }
    for name in (*REPORTED_STATES, "loop_diuretic", "raas_blocker", "beta_blocker", "anticoagulant"):
        columns[name] = sim.states.flags[name]
    for name in (*lab_truth.REPORTED_LABS, "Calcium Corrected"):
        columns[f"true_{name}"] = sim.arrival_labs[name]
    for j, var in enumerate(vitals.VITALS):
        columns[f"true_{var.name}"] = sim.vital_arrival[:, j]
    return pl.DataFrame(columns).sort(["subject_id", "intime"])


def records_frame(sim: Simulation) -> pl.DataFrame:
    s = sim.schedule
    stay = np.where(s.visit >= 0, sim.stays.stay_id[np.maximum(s.visit, 0)], -1)
    columns: dict[str, Any] = {
        "subject_id": sim.patients.subject_id[s.patient], "study_id": s.study_id, "stay_id": nullable_ids(stay),
        "ecg_time": minutes_to_datetime(s.ecg_time), "kind": strings(s.kind),
        "minutes_since_intime": s.minutes_since_intime,
    }
    for name, values in sim.record_truth.items():
        columns[f"true_{name}"] = values
    for name in ECG_FEATURES:
        columns[name] = np.asarray(sim.ecg_arrays[name])
    columns["ischaemia_territory"] = strings(sim.ecg_arrays["ischaemia_territory"])
    columns["nan_stretch"] = np.asarray(sim.ecg_arrays["nan_stretch"])
    columns["flat_lead"] = np.asarray(sim.ecg_arrays["flat_lead"])
    return pl.DataFrame(columns)


# ---- interventions ----------------------------------------------------------------------------
class _Intervener:
    """Re-evaluates labs, vitals and ECG parameters of a visit sample under do(state = on/off)."""

    def __init__(self, sim: Simulation) -> None:
        rng = stream(sim.seed, "ground_truth_interventions")
        n = sim.visits.n
        self.rows = np.sort(rng.choice(n, size=min(n, MAX_INTERVENTION_VISITS), replace=False))
        self.sim = sim
        self.flags = {k: v[self.rows] for k, v in sim.states.flags.items()}
        m = self.rows.size
        stage_p = np.array([0.60, 0.25, 0.15])
        self.ckd_stage = np.array([3, 4, 5])[rng.choice(3, size=m, p=stage_p)]
        self.stemi = rng.random(m) < 0.3
        self.territory = np.array(["anterior", "inferior", "lateral"], dtype=object)[rng.choice(3, size=m)]
        self.noise = EcgNoise.draw(m, rng)
        p = sim.visits.patient[self.rows]
        self.age, self.female, self.bmi = sim.visits.age[self.rows], sim.patients.female[p], sim.patients.bmi[p]
        self.patient = p
        self.old_mi = sim.states.old_mi_territory[self.rows]

    def _labs(self, flags: Mapping[str, BoolArray]) -> tuple[FloatArray, FloatArray]:
        return self.sim.lab_model.evaluate(flags, rows=self.rows)

    def outcomes(self, flags: Mapping[str, BoolArray], territory: NDArray[np.object_],
                 lab_override: Callable[[FloatArray], FloatArray] | None = None) -> dict[str, FloatArray]:
        chronic_w, arrival_w = self._labs(flags)
        if lab_override is not None:
            arrival_w = lab_override(arrival_w)
            chronic_w = lab_override(chronic_w)
        arrival = lab_truth.arrival_values(arrival_w)
        chronic = lab_truth.derive(lab_truth.to_natural(chronic_w))
        _, vit = self.sim.vital_model.evaluate(flags, chronic["Hemoglobin"], arrival["Hemoglobin"], rows=self.rows)
        assert self.sim.ecg_traits is not None
        inputs = make_ecg_inputs(
            flags=flags, labs=arrival, heart_rate=vit[:, vitals.VITAL_INDEX["heartrate"]], age=self.age,
            female=self.female, bmi=self.bmi, ischaemia_territory=territory, old_mi_territory=self.old_mi,
            patient=self.patient, traits=self.sim.ecg_traits)
        ecg = ecg_parameter_arrays(inputs, self.noise)
        out: dict[str, FloatArray] = {f"lab:{k}": v for k, v in arrival.items() if k in lab_truth.REPORTED_LABS}
        out.update({f"vital:{var.name}": vit[:, j] for j, var in enumerate(vitals.VITALS)})
        out.update({f"ecg:{k}": np.asarray(ecg[k], dtype=np.float64) for k in ECG_FEATURES})
        return out

    def do_condition(self, name: str, on: bool) -> dict[str, FloatArray]:
        flags = {k: v.copy() for k, v in self.flags.items()}
        territory = np.where(flags["acute_ischaemia"], self.sim.states.ischaemia_territory[self.rows], "none")
        if name == "ckd":
            flags["ckd"][:] = on
            flags["ckd_advanced"][:] = on & (self.ckd_stage >= 4)
            flags["ckd_esrd"][:] = on & (self.ckd_stage >= 5)
        elif name in ("acute_ischaemia", "stemi"):
            stemi = np.full(self.rows.size, True) if name == "stemi" else self.stemi
            flags["acute_ischaemia"][:] = on
            flags["stemi"][:] = on & stemi
            flags["nstemi"][:] = on & ~stemi
            territory = np.where(on, self.territory, "none")
        else:
            flags[name][:] = on
            model = MODELS.get(name)
            while on and model is not None and model.gate is not None:  # do(X) implies its precondition
                flags[model.gate][:] = True
                model = MODELS.get(model.gate)
        if name in ("lbbb", "rbbb") and on:
            flags["rbbb" if name == "lbbb" else "lbbb"][:] = False
        return self.outcomes(flags, territory.astype(object))

    def do_lab_state(self, name: str, on: bool) -> dict[str, FloatArray]:
        state = next(s for s in LAB_DEFINED_STATES if s.name == name)
        abnormal, normal = LAB_STATE_VALUES[name]
        value = abnormal if on else normal
        j = lab_truth.PRIMARY_INDEX[state.lab]
        scale = lab_truth.PRIMARY_VARIABLES[j].scale

        def override(matrix: FloatArray) -> FloatArray:
            out = matrix.copy()
            out[:, j] = np.log(value) if scale == "log" else value
            return out

        territory = np.where(self.flags["acute_ischaemia"], self.sim.states.ischaemia_territory[self.rows], "none")
        return self.outcomes(self.flags, territory.astype(object), lab_override=override)


def _effect_edges(state: str, on: Mapping[str, FloatArray], off: Mapping[str, FloatArray],
                  observed: Mapping[str, FloatArray]) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    for key, on_values in on.items():
        kind, name = key.split(":", 1)
        a, b, ref = on_values, off[key], observed[key]
        if kind == "ecg" and name in BOOLEAN_ECG_FEATURES:
            diff = float(np.mean(a) - np.mean(b))
            if abs(diff) >= PROPORTION_THRESHOLD:
                edges.append({"kind": kind, "state": state, "target": name,
                              "direction": "increase" if diff > 0 else "decrease",
                              "proportion_change": round(diff, 3)})
            continue
        if kind == "lab" and name in LOG_LABS:
            a, b, ref = np.log(np.maximum(a, 1e-4)), np.log(np.maximum(b, 1e-4)), np.log(np.maximum(ref, 1e-4))
        sd = float(np.std(ref))
        if sd <= 0:
            continue
        smd = float(np.mean(a - b)) / sd
        if abs(smd) >= EFFECT_SIZE_THRESHOLD:
            direction = ("high" if smd > 0 else "low") if kind in ("lab", "vital") else (
                "increase" if smd > 0 else "decrease")
            edges.append({"kind": kind, "state": state, "target": name, "direction": direction,
                          "effect_size": round(smd, 3)})
    return edges


def build_graph(sim: Simulation) -> dict[str, Any]:
    """The machine-readable causal graph (see module docstring)."""
    iv = _Intervener(sim)
    observed_territory = sim.states.ischaemia_territory[iv.rows]
    observed = iv.outcomes(iv.flags, np.where(iv.flags["acute_ischaemia"], observed_territory, "none").astype(object))
    condition_names = [m.name for m in (*ALL_PATIENT_MODELS, *ALL_VISIT_MODELS)] + ["atrial_fibrillation"]
    effects: list[dict[str, Any]] = []
    for name in condition_names:
        effects += _effect_edges(name, iv.do_condition(name, True), iv.do_condition(name, False), observed)
    for lab_state in LAB_DEFINED_STATES:
        effects += _effect_edges(lab_state.name, iv.do_lab_state(lab_state.name, True),
                                 iv.do_lab_state(lab_state.name, False), observed)

    states: list[dict[str, Any]] = []
    for m in (*ALL_PATIENT_MODELS, *ALL_VISIT_MODELS):
        states.append({"name": m.name, "level": "patient" if m in ALL_PATIENT_MODELS else "visit", "kind": m.kind,
                       "description": m.description, "gate": m.gate,
                       "visit_prevalence": round(float(sim.states.flags[m.name].mean()), 4)})
    states.append({"name": "atrial_fibrillation", "level": "visit", "kind": "disease",
                   "description": "AF on this visit's ECG (permanent, paroxysmal episode or new onset)",
                   "gate": None,
                   "visit_prevalence": round(float(sim.states.flags["atrial_fibrillation"].mean()), 4)})
    for s in LAB_DEFINED_STATES:
        states.append({"name": s.name, "level": "visit", "kind": "lab-defined", "description": s.description,
                       "definition": {"lab": s.lab, "direction": s.direction, "threshold": s.threshold,
                                      "threshold_female": s.threshold_female},
                       "visit_prevalence": round(float(sim.states.flags[s.name].mean()), 4)})
    state_edges = [
        {"source": feature, "target": m.name, "log_odds": coef}
        for m in (*ALL_PATIENT_MODELS, *ALL_VISIT_MODELS) for feature, coef in m.coefficients.items()
        if feature in MODELS
    ] + [{"source": m.gate, "target": m.name, "log_odds": None, "requires": True}
         for m in (*ALL_PATIENT_MODELS, *ALL_VISIT_MODELS) if m.gate is not None]
    to9 = diagnoses.icd10_to_icd9()
    codes: dict[str, list[str]] = {}
    for rule in diagnoses.CODE_RULES:
        codes.setdefault(rule.state, []).extend(rule.codes)
    icd_codes = [{"state": state, "icd10": sorted(set(c)), "icd10_undotted": sorted({diagnoses.undotted(x) for x in c}),
                  "icd9": sorted({to9[diagnoses.undotted(x)] for x in c})} for state, c in codes.items()]

    lab_effects = [{"state": e["state"], "lab": e["target"], "itemid": LAB_BY_NAME[e["target"]].itemid,
                    "direction": e["direction"], "effect_size": e["effect_size"]}
                   for e in effects if e["kind"] == "lab"]
    vital_effects = [{"state": e["state"], "vital": e["target"], "direction": e["direction"],
                      "effect_size": e["effect_size"]} for e in effects if e["kind"] == "vital"]
    ecg_effects = [{k: v for k, v in e.items() if k != "kind"} | {"feature": e["target"]}
                   for e in effects if e["kind"] == "ecg"]
    for e in ecg_effects:
        e.pop("target")
    return {
        "schema_version": SCHEMA_VERSION,
        "description": "Latent states of the synthetic cohort and their measured direct effects; see "
                       "docs/synthetic-cohort.md. Effects were measured by do(state on) vs do(state off) on "
                       f"{iv.rows.size} visits with all random draws held fixed.",
        "effect_size_threshold": EFFECT_SIZE_THRESHOLD,
        "proportion_threshold": PROPORTION_THRESHOLD,
        "states": states,
        "state_edges": state_edges,
        "lab_effects": lab_effects,
        "vital_effects": vital_effects,
        "ecg_effects": ecg_effects,
        "icd_codes": icd_codes,
    }


def write_ground_truth(sim: Simulation, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    visits_frame(sim).write_parquet(folder / "visits.parquet", statistics=False)
    records_frame(sim).write_parquet(folder / "records.parquet", statistics=False)
    (folder / "graph.json").write_text(json.dumps(build_graph(sim), indent=1) + "\n")
    from ecgkt.synth.counterfactuals import write_patient_drivers  # per-patient drivers (h16)

    write_patient_drivers(sim, folder)
