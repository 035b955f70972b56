"""Rhythm and conduction states of the ED case mix that the ECG shows and the coder may code.

Atrial flutter, second- and third-degree AV block, a permanent pacemaker, fascicular blocks,
incomplete RBBB and nonspecific ST-T changes (issue 14). They are sampled *after* the clinical
state (their risk factors: age, conduction disease, coronary disease, heart failure, LVH,
hyperkalaemia, beta blockade) from their own random streams, so adding them did not reshuffle the
draws of the conditions sampled before them. Same data-driven logistic form as `physiology`.

Target shares of ED ECGs (orders of magnitude from ECG reference texts — Surawicz & Knilans,
*Chou's Electrocardiography*; not verified against MIMIC-IV-ECG statement counts): nonspecific ST-T
changes ≈ 10 %, left anterior fascicular block ≈ 3–5 %, incomplete RBBB ≈ 2–4 %, paced rhythm
≈ 2–3 %, atrial flutter ≈ 1–2 %, second-degree and complete AV block ≈ 0.2–0.5 % each, left
posterior fascicular block ≈ 0.1–0.3 %.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.physiology import ConditionModel, demographic_features, sample_conditions

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]

__all__ = [
    "CONDUCTION_STATES",
    "PATIENT_CONDUCTION",
    "PATIENT_CONDUCTION_NAMES",
    "VISIT_CONDUCTION",
    "sample_patient_conduction",
    "sample_visit_conduction",
]

PATIENT_CONDUCTION: tuple[ConditionModel, ...] = (
    ConditionModel("pacemaker", "permanent pacemaker (paced rhythm on most ECGs)", -5.6,
                   {"age10": 0.8, "heart_failure": 1.0, "first_degree_av_block": 1.4, "af_chronic": 0.8,
                    "lbbb": 0.9, "rbbb": 0.5}),
    ConditionModel("lafb", "left anterior fascicular block", -4.2,
                   {"age10": 0.45, "male": 0.4, "coronary_disease": 0.4, "lvh": 0.5, "hypertension": 0.2}),
    ConditionModel("lpfb", "left posterior fascicular block", -6.3, {"age10": 0.4, "coronary_disease": 0.6}),
    ConditionModel("incomplete_rbbb", "incomplete right bundle branch block", -3.6,
                   {"male": 0.5, "copd": 0.4, "age10": 0.1}),
)

VISIT_CONDUCTION: tuple[ConditionModel, ...] = (
    ConditionModel("atrial_flutter", "atrial flutter on this visit's ECG", -4.7,
                   {"af_chronic": 1.6, "heart_failure": 0.7, "copd": 0.6, "age10": 0.4, "sepsis": 0.6}),
    ConditionModel("av_block_second_degree", "second-degree AV block (Mobitz I or II)", -7.0,
                   {"age10": 0.6, "first_degree_av_block": 1.8, "beta_blocker": 0.7, "acute_ischaemia": 1.2,
                    "hyperkalaemia": 1.2}),
    ConditionModel("av_block_complete", "complete (third-degree) AV block", -6.8,
                   {"age10": 0.7, "first_degree_av_block": 1.3, "lbbb": 1.0, "rbbb": 1.0, "acute_ischaemia": 1.3,
                    "hyperkalaemia": 1.5}),
    ConditionModel("nonspecific_st_t", "nonspecific ST-T changes", -3.5,
                   {"age10": 0.3, "lvh": 0.4, "coronary_disease": 0.5, "heart_failure": 0.5, "hypertension": 0.3,
                    "female": 0.3, "diabetes": 0.3, "hypokalaemia": 0.8, "ckd": 0.3}),
)

PATIENT_CONDUCTION_NAMES = frozenset(m.name for m in PATIENT_CONDUCTION)
CONDUCTION_STATES: tuple[str, ...] = tuple(m.name for m in (*PATIENT_CONDUCTION, *VISIT_CONDUCTION))


def sample_patient_conduction(chronic_flags: dict[str, BoolArray], age: FloatArray, female: BoolArray,
                              black: BoolArray, bmi: FloatArray, rng: np.random.Generator) -> dict[str, BoolArray]:
    """Per-patient pacemaker and fascicular / incomplete right bundle blocks (mutually consistent)."""
    features = demographic_features(age, female, black, bmi)
    features.update(chronic_flags)
    drawn = sample_conditions(PATIENT_CONDUCTION, features, rng)
    bbb = chronic_flags["lbbb"] | chronic_flags["rbbb"]
    drawn["incomplete_rbbb"] &= ~bbb  # a complete block supersedes the incomplete one
    drawn["lafb"] &= ~chronic_flags["lbbb"]  # LBBB blocks both fascicles' territory already
    drawn["lpfb"] &= ~(chronic_flags["lbbb"] | drawn["lafb"])
    return drawn


def sample_visit_conduction(flags: dict[str, BoolArray], age: FloatArray, female: BoolArray, black: BoolArray,
                            bmi: FloatArray, rng: np.random.Generator) -> dict[str, BoolArray]:
    """Per-visit flutter, AV block and nonspecific ST-T changes; a pacemaker prevents AV block."""
    features = demographic_features(age, female, black, bmi)
    features.update(flags)
    drawn = sample_conditions(VISIT_CONDUCTION, features, rng)
    drawn["atrial_flutter"] &= ~flags["atrial_fibrillation"]
    no_av_block = flags["pacemaker"] | flags["atrial_fibrillation"] | drawn["atrial_flutter"]
    drawn["av_block_complete"] &= ~no_av_block
    drawn["av_block_second_degree"] &= ~(no_av_block | drawn["av_block_complete"])
    return drawn
