"""Per-patient counterfactuals: switching a condition off with every draw fixed."""

from __future__ import annotations

import numpy as np
import pytest

from ecgkt.synth.counterfactual import counterfactual
from ecgkt.synth.simulate import Simulation, simulate


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(400, 3)


def test_switching_an_absent_condition_off_changes_nothing(sim: Simulation) -> None:
    cf = counterfactual(sim, "ckd")
    without = ~sim.states.flags["ckd"]
    assert np.allclose(cf.visit_labs["Creatinine"][without], cf.visit_labs_cf["Creatinine"][without])
    records = ~sim.states.flags["ckd"][sim.record_visit]
    assert np.allclose(cf.ecg_change("qtc_ms")[records], 0.0)


def test_ckd_off_lowers_creatinine_and_removes_its_abnormalities_in_carriers(sim: Simulation) -> None:
    cf = counterfactual(sim, "ckd")
    carriers = sim.states.flags["ckd"]
    assert carriers.sum() > 10
    assert np.all(cf.visit_labs_cf["Creatinine"][carriers] < cf.visit_labs["Creatinine"][carriers])
    removed = cf.lab_abnormalities_removed()["Creatinine"]
    assert removed[carriers].mean() > 0.5 and not removed[~carriers].any()


def test_factual_intervention_reproduces_the_simulation(sim: Simulation) -> None:
    """do(X = its observed value) for everyone with X is the simulation itself (draws truly fixed)."""
    cf = counterfactual(sim, "malignancy", on=False)
    unaffected = ~sim.states.flags["malignancy"][sim.record_visit]
    for name in ("qtc_ms", "amplitude_scale", "heart_rate_bpm", "qrs_axis_deg"):
        assert np.allclose(cf.ecg_change(name)[unaffected], 0.0)


def test_lab_defined_states_cannot_be_switched_directly(sim: Simulation) -> None:
    with pytest.raises(ValueError, match="lab value"):
        counterfactual(sim, "hyperkalaemia")


def test_fingerprint_makes_repeat_ecgs_of_a_person_alike(sim: Simulation) -> None:
    axis = np.asarray(sim.ecg_arrays["qrs_axis_deg"], dtype=float)
    patient = sim.schedule.patient
    rotation = np.asarray(sim.ecg_arrays["anatomy_rotation_deg"], dtype=float)
    for values in (axis, rotation):
        first, second = [], []
        for p in np.unique(patient):
            idx = np.flatnonzero(patient == p)
            if idx.size >= 2:
                first.append(values[idx[0]])
                second.append(values[idx[1]])
        assert np.corrcoef(first, second)[0, 1] > 0.6
