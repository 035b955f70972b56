"""Per-patient ground truth (synth/counterfactuals.py): switching a true condition off in one ECG."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ecgkt.synth.counterfactuals import _switched_off, _World, condition_names, patient_drivers_frame
from ecgkt.synth.simulate import Simulation, simulate


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(200, 3)


@pytest.fixture(scope="module")
def drivers(sim: Simulation) -> pl.DataFrame:
    return patient_drivers_frame(sim)


def test_unchanged_world_reproduces_the_generator(sim: Simulation) -> None:
    world = _World(sim)
    labs, ecg = world.evaluate(sim.states.flags)
    for feature in ("qtc_ms", "heart_rate_bpm", "rhythm_af", "t_amplitude_scale"):
        np.testing.assert_allclose(np.asarray(ecg[feature], float), np.asarray(sim.ecg_arrays[feature], float))
    stay = world.in_stay
    np.testing.assert_allclose(labs["Potassium"][stay], sim.record_truth["potassium"][stay])


def test_state_rows_mark_exactly_the_true_conditions(sim: Simulation, drivers: pl.DataFrame) -> None:
    states = drivers.filter(pl.col("kind") == "state")
    s = sim.schedule
    in_stay = s.visit >= 0
    for name in ("ckd", "sepsis", "anticoagulant", "hyperkalaemia"):
        truth = in_stay & sim.states.flags[name][np.maximum(s.visit, 0)]
        marked = set(states.filter(pl.col("state") == name)["study_id"].to_list())
        assert marked == set(s.study_id[truth].tolist())


def test_lab_drivers_disappear_and_belong_to_true_states(drivers: pl.DataFrame) -> None:
    labs = drivers.filter(pl.col("kind") == "lab")
    assert labs.height > 0
    states = drivers.filter(pl.col("kind") == "state").select("study_id", "state").unique()
    assert labs.select("study_id", "state").unique().join(states, on=["study_id", "state"], how="anti").height == 0
    high = labs.filter(pl.col("direction") == "high")
    assert (high["observed"] > high["counterfactual"]).all()
    low = labs.filter(pl.col("direction") == "low")
    assert (low["observed"] < low["counterfactual"]).all()


def test_known_mechanisms_appear(drivers: pl.DataFrame) -> None:
    labs = drivers.filter(pl.col("kind") == "lab")
    # anticoagulants raise the INR (lab_truth.LAB_EFFECTS); hyperkalaemia is its own potassium
    assert "INR(PT)_high" in labs.filter(pl.col("state") == "anticoagulant")["target"].to_list()
    assert set(labs.filter(pl.col("state") == "hyperkalaemia")["target"].to_list()) <= {"Potassium_high"}
    # a condition without lab effects in the generator drives no lab in any patient
    assert labs.filter(pl.col("state") == "lbbb").height == 0
    assert "bbb_lbbb" in drivers.filter((pl.col("kind") == "ecg") & (pl.col("state") == "lbbb"))["target"].to_list()


def test_switching_off_ckd_takes_its_stages(sim: Simulation) -> None:
    visits = sim.states.flags["ckd"].copy()
    off = _switched_off(sim.states.flags, "ckd", visits)
    assert not (off["ckd"] | off["ckd_advanced"] | off["ckd_esrd"])[visits].any()
    assert "atrial_fibrillation" in condition_names()
