"""Per-patient counterfactuals: the same patients, with one condition switched off, every draw fixed.

For explanation ground truth that is about *this* patient (issue 16): given a simulation and a
condition, re-evaluate every visit's true labs, vitals and every ECG's parameters with the
condition forced off (or on), holding all random draws (personal baselines, effect sizes, the ECG
fingerprint, record noise) exactly as they were. The difference between the factual and the
counterfactual is what that condition did *in that patient*: which lab abnormalities disappear,
which ECG features change.

Semantics (the same as the ground-truth graph's interventions): the other sampled conditions are
held fixed (direct effects); lab-defined states (hyperkalaemia, anaemia, …) are *recomputed* from
the counterfactual labs, since they are consequences of the labs; switching a condition on also
switches on its gate (sepsis needs infection); CKD switches its stage flags with it; acute ischaemia
switches STEMI / NSTEMI with it.

    from ecgkt.synth.simulate import simulate
    from ecgkt.synth.counterfactual import counterfactual
    sim = simulate(500, 0)
    cf = counterfactual(sim, "ckd")                  # every visit and ECG record with CKD off
    gone = cf.lab_abnormalities_removed()            # visits × labs: abnormal in fact, normal without CKD
    d_ecg = cf.ecg_change("qtc_ms")                  # per ECG record, counterfactual − factual
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_BY_NAME
from ecgkt.synth import lab_truth, vitals
from ecgkt.synth.conduction import PATIENT_CONDUCTION_NAMES
from ecgkt.synth.ecg_inputs import make_ecg_inputs
from ecgkt.synth.ecg_mapping import ECG_FEATURES, ecg_parameter_arrays
from ecgkt.synth.physiology import LAB_DEFINED_STATES, VISIT_CONDITIONS, lab_defined_flags
from ecgkt.synth.simulate import Simulation

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["SWITCHABLE_LAB_STATES", "Counterfactual", "counterfactual", "intervene_flags"]

SWITCHABLE_LAB_STATES = frozenset(s.name for s in LAB_DEFINED_STATES)
_GATES = {m.name: m.gate for m in VISIT_CONDITIONS if m.gate is not None}


def intervene_flags(flags: Mapping[str, BoolArray], condition: str, on: bool,
                    ckd_stage: NDArray[np.int64] | None = None) -> dict[str, BoolArray]:
    """Copy of `flags` with do(condition = on) for every row (and the flags that follow it by definition)."""
    if condition in SWITCHABLE_LAB_STATES:
        raise ValueError(f"{condition} is defined by a lab value; switch off one of its causes instead")
    if condition not in flags:
        raise ValueError(f"unknown condition {condition!r}")
    out = {k: v.copy() for k, v in flags.items()}
    out[condition][:] = on
    if condition == "ckd":
        stage = ckd_stage if ckd_stage is not None else np.full(next(iter(flags.values())).size, 3)
        out["ckd_advanced"][:] = on & (stage >= 4)
        out["ckd_esrd"][:] = on & (stage >= 5)
    if condition == "acute_ischaemia" and not on:
        out["stemi"][:] = False
        out["nstemi"][:] = False
    if condition in ("stemi", "nstemi") and on:
        out["acute_ischaemia"][:] = True
    gate = _GATES.get(condition)
    while on and gate is not None:
        out[gate][:] = True
        gate = _GATES.get(gate)
    if not on:  # conditions that exist only among carriers of this one go with it
        for child, parent in _GATES.items():
            if parent == condition:
                out[child][:] = False
    if condition == "atrial_fibrillation" and not on:
        out["af_permanent"][:] = False
    return out


@dataclass
class Counterfactual:
    """Factual vs counterfactual values for every visit (labs at the acute peak) and ECG record."""

    condition: str
    on: bool
    visit_labs: dict[str, FloatArray]  # factual true labs at the acute peak, per visit
    visit_labs_cf: dict[str, FloatArray]
    visit_lab_states: dict[str, BoolArray]  # factual lab-defined states per visit
    visit_lab_states_cf: dict[str, BoolArray]
    ecg: dict[str, NDArray[np.generic]]  # factual ECG parameter arrays per record (as rendered)
    ecg_cf: dict[str, NDArray[np.generic]]
    female: BoolArray  # per visit (reference ranges)

    def lab_abnormalities_removed(self) -> dict[str, BoolArray]:
        """Per lab: visits where the value is outside its reference range in fact but inside it without
        the condition (for `on=False`), i.e. abnormalities the condition caused in that patient."""
        out: dict[str, BoolArray] = {}
        for name in lab_truth.REPORTED_LABS:
            item = LAB_BY_NAME.get(name)
            if item is None:
                continue
            fact = _abnormal(self.visit_labs[name], item.name, self.female)
            cf = _abnormal(self.visit_labs_cf[name], item.name, self.female)
            out[name] = fact & ~cf
        return out

    def ecg_change(self, feature: str) -> FloatArray:
        """Counterfactual − factual value of one ECG parameter, per record."""
        return (np.asarray(self.ecg_cf[feature], dtype=np.float64)
                - np.asarray(self.ecg[feature], dtype=np.float64))

    def ecg_features_changed(self, tolerance: float = 1e-9) -> dict[str, BoolArray]:
        """Per ECG feature: the records whose value changes under the intervention."""
        return {name: np.abs(self.ecg_change(name)) > tolerance for name in ECG_FEATURES}


def _abnormal(values: FloatArray, name: str, female: BoolArray) -> BoolArray:
    item = LAB_BY_NAME[name]
    low_m, high_m = item.reference_range(False)
    low_f, high_f = item.reference_range(True)
    low = np.where(female, np.nan if low_f is None else low_f, np.nan if low_m is None else low_m)
    high = np.where(female, np.nan if high_f is None else high_f, np.nan if high_m is None else high_m)
    with np.errstate(invalid="ignore"):
        return np.asarray((values < low) | (values > high), dtype=bool)


def counterfactual(sim: Simulation, condition: str, *, on: bool = False) -> Counterfactual:
    """Re-evaluate the whole simulation under do(condition = on) with all draws fixed."""
    if sim.ecg_inputs is None or sim.ecg_noise is None or sim.ecg_traits is None or sim.record_visit is None:
        raise ValueError("simulation lacks the stored ECG draws (run ecgkt.synth.simulate.simulate)")
    female = sim.visit_female
    base_flags = {k: v for k, v in sim.states.flags.items() if k not in SWITCHABLE_LAB_STATES}
    flags_cf = intervene_flags(base_flags, condition, on, sim.states.ckd_stage)
    chronic_w, arrival_w = sim.lab_model.evaluate(flags_cf)
    labs_cf = lab_truth.arrival_values(arrival_w)
    flags_cf.update(lab_defined_flags(labs_cf, female))
    chronic_labs_cf = lab_truth.derive(lab_truth.to_natural(chronic_w))
    vit_chronic, vit_arrival = sim.vital_model.evaluate(flags_cf, chronic_labs_cf["Hemoglobin"],
                                                        labs_cf["Hemoglobin"])

    s = sim.schedule
    visit = sim.record_visit
    in_stay = s.visit >= 0
    minutes = s.minutes_since_intime
    lab_values = lab_truth.values_at(chronic_w, arrival_w, visit, minutes)
    heart_rate = vitals.vitals_at(vit_chronic, vit_arrival, visit, minutes)[:, vitals.VITAL_INDEX["heartrate"]]
    fact = sim.ecg_inputs
    row_flags: dict[str, BoolArray] = {}
    for name, values in flags_cf.items():
        row = values[visit]
        chronic = name in lab_truth.CHRONIC_CONDITIONS or name in PATIENT_CONDUCTION_NAMES
        row_flags[name] = row if chronic else row & in_stay
    # outpatient ECGs: their AF status was drawn separately; keep it unless AF itself is switched
    if condition not in ("atrial_fibrillation", "af_chronic", "af_permanent"):
        row_flags["atrial_fibrillation"] = np.asarray(fact.flags["atrial_fibrillation"]).copy()
    elif not on:
        row_flags["atrial_fibrillation"][:] = False
    ischaemia = fact.ischaemia_territory
    if condition in ("acute_ischaemia", "stemi", "nstemi") and not on:
        ischaemia = np.full(s.n, "none", dtype=object)
    old_mi = fact.old_mi_territory
    if condition in ("prior_mi", "coronary_disease") and not on:
        old_mi = np.full(s.n, "none", dtype=object)
    inputs = make_ecg_inputs(flags=row_flags, labs=lab_values, heart_rate=heart_rate, age=fact.age,
                             female=fact.female, bmi=fact.bmi, ischaemia_territory=ischaemia,
                             old_mi_territory=old_mi, patient=s.patient, traits=sim.ecg_traits)
    ecg_cf = ecg_parameter_arrays(inputs, sim.ecg_noise)
    lab_state_names = [st.name for st in LAB_DEFINED_STATES]
    return Counterfactual(
        condition=condition, on=on, visit_labs=dict(sim.arrival_labs), visit_labs_cf=labs_cf,
        visit_lab_states={k: sim.states.flags[k] for k in lab_state_names},
        visit_lab_states_cf={k: flags_cf[k] for k in lab_state_names},
        ecg=sim.ecg_arrays, ecg_cf=ecg_cf, female=female,
    )
