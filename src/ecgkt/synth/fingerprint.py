"""What stays the same in a person's ECGs: a morphology fingerprint and the left ventricle's structure.

Two per-patient latent layers that the ECG mapping reads (issue 14):

* **Fingerprint** — standard-normal traits per patient (QRS axis, QRS/T/P amplitude, heart
  rotation, P axis, PR, QRS duration, QTc offset, HRV). Each record's trait is
  √ρ·patient + √(1−ρ)·record, so repeat ECGs of one person resemble each other far more than two
  people's (ECG morphology is a stable personal trait; Surawicz & Knilans, *Chou's
  Electrocardiography*). ρ is a design value (0.8 for morphology, 0.6 for intervals, 0.5 for HRV),
  not fitted to data.
  `k_sens` is a person's sensitivity of repolarisation to potassium: the same serum potassium
  peaks one person's T waves and leaves another's normal (the ECG is an insensitive test for
  hyperkalaemia; deep models reach AUC ≈ 0.85–0.95, not 1).
* **Left ventricle** — LV mass index (g/m²) and ejection fraction (%), continuous. Mass grows with
  age, male sex, hypertension, CKD, LVH and heart failure (LVH ⇒ mass index above the ASE cut-offs
  115 g/m² men / 95 g/m² women); EF is reduced (20–40 %) in about half of heart-failure patients
  (HFrEF) and preserved otherwise. The ECG reads mass as QRS voltage and duration and low EF as QRS
  widening, low limb voltage, late precordial transition, QTc prolongation and atrial enlargement
  (Attia et al. 2019, *Nat Med*: EF ≤ 35 % is visible to a CNN with AUC 0.93).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "TRAITS",
    "TRAIT_PERSISTENCE",
    "PatientEcgTraits",
    "ejection_fraction",
    "lv_mass_index",
    "record_traits",
    "sample_patient_traits",
]

TRAITS: tuple[str, ...] = ("axis", "amp", "t_amp", "p_amp", "rotation", "p_turn", "pr", "qrs", "qtc", "hrv",
                           "k_sens", "t_width", "lv_volt")
# Share of each trait's variance that belongs to the person (the rest is redrawn per record).
TRAIT_PERSISTENCE: dict[str, float] = {
    "axis": 0.8, "amp": 0.8, "t_amp": 0.8, "p_amp": 0.8, "rotation": 0.8, "p_turn": 0.8,
    "pr": 0.6, "qrs": 0.6, "qtc": 0.6, "hrv": 0.5, "k_sens": 0.8, "t_width": 0.6, "lv_volt": 0.9,
}
HFREF_SHARE = 0.5


@dataclass
class PatientEcgTraits:
    """Per-patient draws (index = patient index)."""

    z: FloatArray  # (n_patients, len(TRAITS)) standard normal
    lv_mass_z: FloatArray  # (n_patients,) personal deviation of LV mass
    ef_u: FloatArray  # (n_patients,) uniform: HFrEF membership and EF within its range
    ef_z: FloatArray  # (n_patients,) personal deviation of a preserved EF


def sample_patient_traits(n_patients: int, rng: np.random.Generator) -> PatientEcgTraits:
    return PatientEcgTraits(z=rng.standard_normal((n_patients, len(TRAITS))),
                            lv_mass_z=rng.standard_normal(n_patients), ef_u=rng.random(n_patients),
                            ef_z=rng.standard_normal(n_patients))


def record_traits(patient_z: FloatArray, record_z: FloatArray) -> FloatArray:
    """Mix each record's fresh draws with its patient's fingerprint (both (n, len(TRAITS)))."""
    rho = np.array([TRAIT_PERSISTENCE[t] for t in TRAITS])
    return np.sqrt(rho) * patient_z + np.sqrt(1.0 - rho) * record_z


def lv_mass_index(age: FloatArray, female: BoolArray, flags: dict[str, BoolArray], mass_z: FloatArray) -> FloatArray:
    """LV mass index (g/m²): ~78 women / 90 men at 50, +0.3 per year, hypertension +10, CKD +6
    (advanced +6 more), heart failure +10, LVH +40 (LVH patients sit above the ASE cut-offs)."""
    base = np.where(female, 78.0, 90.0) + 0.3 * (age - 50.0)
    base += 10.0 * flags["hypertension"] + 6.0 * flags["ckd"] + 6.0 * flags["ckd_advanced"]
    base += 10.0 * flags["heart_failure"] + 40.0 * flags["lvh"]
    return np.clip(base + 14.0 * mass_z, 50.0, 260.0)


def ejection_fraction(flags: dict[str, BoolArray], ef_u: FloatArray, ef_z: FloatArray) -> FloatArray:
    """LVEF (%): HFrEF (half of heart failure) 18–40 %, otherwise 62 ± 5 % (prior MI −6)."""
    hfref = flags["heart_failure"] & (ef_u < HFREF_SHARE)
    reduced = 18.0 + 22.0 * (ef_u / HFREF_SHARE)
    preserved = 62.0 + 5.0 * ef_z - 6.0 * flags["prior_mi"] - 4.0 * flags["heart_failure"]
    return np.where(hfref, reduced, np.clip(preserved, 42.0, 75.0))
