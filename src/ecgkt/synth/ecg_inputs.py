"""One place that assembles `EcgInputs` from a state: used by the simulation, the ground-truth
interventions and the per-patient counterfactuals, so all three read the ECG the same way."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from ecgkt.synth.ecg_mapping import EcgInputs
from ecgkt.synth.fingerprint import PatientEcgTraits, ejection_fraction, lv_mass_index

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["make_ecg_inputs"]


def make_ecg_inputs(*, flags: Mapping[str, BoolArray], labs: Mapping[str, FloatArray], heart_rate: FloatArray,
                    age: FloatArray, female: BoolArray, bmi: FloatArray, ischaemia_territory: NDArray[np.object_],
                    old_mi_territory: NDArray[np.object_], patient: NDArray[np.int64],
                    traits: PatientEcgTraits) -> EcgInputs:
    """Rows are ECG records (or visits); `patient` indexes each row's patient in `traits`."""
    row_flags = dict(flags)
    mass = lv_mass_index(age, female, row_flags, traits.lv_mass_z[patient])
    ef = ejection_fraction(row_flags, traits.ef_u[patient], traits.ef_z[patient])
    return EcgInputs(
        flags=row_flags, potassium=labs["Potassium"], free_calcium=labs["Free Calcium"], magnesium=labs["Magnesium"],
        heart_rate=heart_rate, age=age, female=female, bmi=bmi, ischaemia_territory=ischaemia_territory,
        old_mi_territory=old_mi_territory, haemoglobin=labs["Hemoglobin"], albumin=labs["Albumin"],
        glucose=labs["Glucose"], lv_mass_index=mass, ejection_fraction=ef, patient_traits=traits.z[patient],
    )
