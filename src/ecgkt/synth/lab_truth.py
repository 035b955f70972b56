"""True laboratory values of every visit, as a function of its latent conditions.

Every lab variable has a healthy-adult baseline (sex- and age-dependent) and receives additive
shifts from conditions (`LAB_EFFECTS`, written as data so the ground-truth graph is derived from the
same numbers that generate the values). Right-skewed labs (enzymes, troponin, CRP, creatinine, …)
live on a log scale, so their effects are fold changes. Acid–base, chloride, total and ionised
calcium, haematocrit, red cell count, absolute counts, PT and direct bilirubin are *derived* by
physiological relations (Henderson–Hasselbalch, anion gap, albumin correction, MCH), so the 45
labs stay mutually consistent.

Values change within a visit: the acute part of a lab resolves with a half-life (potassium,
lactate, glucose) or rises (troponin, CK, CK-MB after an infarct), so repeated draws and labs
outside the 90-minute window differ from the first one, as they do in real EDs.

The model is a pure function of (conditions, pre-drawn noise): `LabTruthModel.evaluate` can be
re-run with one condition switched on or off for everybody, which is how the ground-truth graph
measures each condition's *direct* effect on each lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.synth.physiology import PATIENT_CONDITIONS

FloatArray = NDArray[np.float64]
Scale = Literal["linear", "log"]


@dataclass(frozen=True)
class LabVariable:
    """A primary (directly perturbed) lab variable. For log scale, `mean` is the median and `sd` a log-SD."""

    name: str
    scale: Scale
    mean: float
    sd: float
    mean_female: float | None = None
    age_slope: float = 0.0  # change per decade of age above 60 (log units for log scale)
    half_life_min: float | None = None  # acute part resolves with this half-life; None = stable
    rises: bool = False  # acute part still rising in the first hours (myocardial necrosis markers)


PRIMARY_VARIABLES: tuple[LabVariable, ...] = (
    LabVariable("Sodium", "linear", 139.5, 2.3),
    LabVariable("Potassium", "linear", 4.15, 0.32, half_life_min=240.0),
    LabVariable("Bicarbonate", "linear", 25.5, 2.0, half_life_min=600.0),
    LabVariable("Calcium Corrected", "linear", 9.35, 0.30),
    LabVariable("Magnesium", "linear", 2.0, 0.16, half_life_min=900.0),
    LabVariable("Phosphate", "linear", 3.4, 0.45),
    LabVariable("Hemoglobin", "linear", 15.0, 1.0, mean_female=13.3, age_slope=-0.15),
    LabVariable("Neutrophils", "linear", 61.0, 7.0),
    LabVariable("Monocytes", "linear", 7.0, 1.8),
    LabVariable("Albumin", "linear", 4.1, 0.28, age_slope=-0.06),
    LabVariable("pCO2", "linear", 40.0, 3.0, half_life_min=120.0),
    LabVariable("O2 Saturation", "linear", 96.5, 1.5, half_life_min=120.0),
    LabVariable("Anion Gap", "linear", 12.0, 1.8),
    LabVariable("MCH", "linear", 30.0, 1.4),
    LabVariable("Hematocrit Ratio", "linear", 2.95, 0.06),
    LabVariable("Direct Bilirubin Fraction", "linear", 0.25, 0.05),
    LabVariable("Urea Nitrogen", "log", 15.0, 0.28, mean_female=13.0, age_slope=0.08),
    LabVariable("Creatinine", "log", 0.95, 0.14, mean_female=0.74, age_slope=0.04),
    LabVariable("Glucose", "log", 102.0, 0.11, half_life_min=300.0),
    LabVariable("RDW", "log", 13.4, 0.06, age_slope=0.015),
    LabVariable("White Blood Cells", "log", 7.2, 0.27),
    LabVariable("Platelet Count", "log", 245.0, 0.24, mean_female=262.0),
    LabVariable("Eosinophils", "log", 1.8, 0.6),
    LabVariable("Basophils", "log", 0.45, 0.35),
    LabVariable("Bands", "log", 1.2, 0.8),
    LabVariable("ALT", "log", 24.0, 0.42, mean_female=19.0),
    LabVariable("AST", "log", 23.0, 0.33),
    LabVariable("Alkaline Phosphatase", "log", 78.0, 0.28),
    LabVariable("Bilirubin Total", "log", 0.55, 0.40),
    LabVariable("INR(PT)", "log", 1.03, 0.05),
    LabVariable("PTT", "log", 30.0, 0.09),
    LabVariable("Fibrinogen", "log", 330.0, 0.20),
    LabVariable("Troponin T", "log", 0.005, 0.55, age_slope=0.15, rises=True),
    LabVariable("Creatine Kinase", "log", 130.0, 0.50, mean_female=95.0, rises=True),
    LabVariable("CK-MB", "log", 2.0, 0.45, rises=True),
    LabVariable("C-Reactive Protein", "log", 2.5, 1.0),
    LabVariable("Lactate", "log", 1.2, 0.28, half_life_min=150.0),
    LabVariable("Carboxyhemoglobin", "log", 1.0, 0.30),
)
PRIMARY_INDEX: dict[str, int] = {v.name: i for i, v in enumerate(PRIMARY_VARIABLES)}


@dataclass(frozen=True)
class LabEffect:
    """A condition shifts a primary variable by `shift` (log units for log-scale variables).

    The shift varies between people (`spread` = its relative SD) and only a `fraction` of carriers
    show it; effects with the same `group` are switched on or off together for a visit.
    """

    condition: str
    variable: str
    shift: float
    spread: float = 0.35
    fraction: float = 1.0
    group: str | None = None


def _add(condition: str, variable: str, delta: float, spread: float = 0.35, fraction: float = 1.0,
         group: str | None = None) -> LabEffect:
    return LabEffect(condition, variable, delta, spread, fraction, group)


def _mul(condition: str, variable: str, factor: float, spread: float = 0.35, fraction: float = 1.0,
         group: str | None = None) -> LabEffect:
    return LabEffect(condition, variable, float(np.log(factor)), spread, fraction, group)


LAB_EFFECTS: tuple[LabEffect, ...] = (
    # potassium: failing kidneys and RAAS blockade retain it, loop diuretics, alcohol and GI losses waste it
    _add("ckd", "Potassium", 0.15), _add("ckd_advanced", "Potassium", 0.35), _add("ckd_esrd", "Potassium", 0.45),
    _add("raas_blocker", "Potassium", 0.15), _add("loop_diuretic", "Potassium", -0.35),
    _add("alcohol_use", "Potassium", -0.15), _add("aki", "Potassium", 0.55, spread=0.5),
    _add("hyperglycaemic_crisis", "Potassium", 0.7, spread=0.5), _add("gastroenteritis", "Potassium", -0.55),
    _add("sepsis", "Potassium", 0.1), _add("respiratory_failure", "Potassium", 0.15),
    # sodium
    _add("liver_disease", "Sodium", -3.5, spread=0.6), _add("heart_failure", "Sodium", -1.0),
    _add("loop_diuretic", "Sodium", -1.0), _add("acute_heart_failure", "Sodium", -2.5, spread=0.8),
    _add("gastroenteritis", "Sodium", -2.5, spread=0.8), _add("sepsis", "Sodium", -1.5, spread=0.8),
    _add("hyperglycaemic_crisis", "Sodium", -4.0, spread=0.5), _add("alcohol_intoxication", "Sodium", -1.0),
    _add("infection", "Sodium", -1.0, spread=0.8),
    # bicarbonate (metabolic component; respiratory compensation is applied in `derive`)
    _add("ckd_advanced", "Bicarbonate", -3.0), _add("ckd_esrd", "Bicarbonate", -2.0),
    _add("loop_diuretic", "Bicarbonate", 1.5), _add("sepsis", "Bicarbonate", -3.5, spread=0.5),
    _add("hyperglycaemic_crisis", "Bicarbonate", -10.0, spread=0.3, fraction=0.6, group="ketoacidosis"),
    _add("aki", "Bicarbonate", -2.0), _add("gastroenteritis", "Bicarbonate", -0.5, spread=1.5),
    _add("hyperglycaemic_crisis", "Anion Gap", 8.0, spread=0.3, fraction=0.6, group="ketoacidosis"),
    _add("ckd_advanced", "Anion Gap", 2.0), _add("ckd_esrd", "Anion Gap", 2.0),
    # kidney function
    _mul("ckd", "Urea Nitrogen", 1.5), _mul("ckd_advanced", "Urea Nitrogen", 1.6),
    _mul("ckd_esrd", "Urea Nitrogen", 1.5), _mul("heart_failure", "Urea Nitrogen", 1.15),
    _mul("loop_diuretic", "Urea Nitrogen", 1.15), _mul("aki", "Urea Nitrogen", 1.9),
    _mul("acute_heart_failure", "Urea Nitrogen", 1.3), _mul("gi_bleed", "Urea Nitrogen", 1.8),
    _mul("gastroenteritis", "Urea Nitrogen", 1.3), _mul("sepsis", "Urea Nitrogen", 1.3),
    _mul("hyperglycaemic_crisis", "Urea Nitrogen", 1.5),
    _mul("ckd", "Creatinine", 1.6), _mul("ckd_advanced", "Creatinine", 1.8), _mul("ckd_esrd", "Creatinine", 2.4),
    _mul("heart_failure", "Creatinine", 1.1), _mul("aki", "Creatinine", 1.9, spread=0.4),
    _mul("acute_heart_failure", "Creatinine", 1.2), _mul("sepsis", "Creatinine", 1.2),
    _mul("gastroenteritis", "Creatinine", 1.15), _mul("hyperglycaemic_crisis", "Creatinine", 1.3),
    # glucose
    _mul("diabetes", "Glucose", 1.6, spread=0.5), _mul("hyperglycaemic_crisis", "Glucose", 3.0),
    _mul("sepsis", "Glucose", 1.15), _mul("acute_ischaemia", "Glucose", 1.12),
    _mul("respiratory_failure", "Glucose", 1.1),
    # calcium, magnesium, phosphate
    _add("ckd_advanced", "Calcium Corrected", -0.3), _add("ckd_esrd", "Calcium Corrected", -0.3),
    _add("alcohol_use", "Calcium Corrected", -0.1), _add("malignancy", "Calcium Corrected", 0.1),
    _add("hypercalcaemic_process", "Calcium Corrected", 2.0, spread=0.4),
    _add("sepsis", "Calcium Corrected", -0.35, spread=0.6), _add("aki", "Calcium Corrected", -0.15),
    _add("alcohol_use", "Magnesium", -0.3), _add("loop_diuretic", "Magnesium", -0.15),
    _add("diabetes", "Magnesium", -0.12), _add("ckd_advanced", "Magnesium", 0.2), _add("ckd_esrd", "Magnesium", 0.25),
    _add("gastroenteritis", "Magnesium", -0.2), _add("alcohol_intoxication", "Magnesium", -0.15),
    _add("ckd", "Phosphate", 0.25), _add("ckd_advanced", "Phosphate", 0.6), _add("ckd_esrd", "Phosphate", 1.5),
    _add("alcohol_use", "Phosphate", -0.4), _add("aki", "Phosphate", 0.8),
    _add("hyperglycaemic_crisis", "Phosphate", 0.8),
    _add("respiratory_failure", "Phosphate", -0.3),
    # red cells
    _add("ckd", "Hemoglobin", -0.7), _add("ckd_advanced", "Hemoglobin", -1.1), _add("ckd_esrd", "Hemoglobin", -0.8),
    _add("liver_disease", "Hemoglobin", -1.4), _add("malignancy", "Hemoglobin", -1.2),
    _add("heart_failure", "Hemoglobin", -0.4), _add("copd", "Hemoglobin", 0.5), _add("smoker", "Hemoglobin", 0.3),
    _add("anticoagulant", "Hemoglobin", -0.2), _add("gi_bleed", "Hemoglobin", -3.5, spread=0.4),
    _add("sepsis", "Hemoglobin", -0.6), _add("infection", "Hemoglobin", -0.2),
    _add("gastroenteritis", "Hemoglobin", 0.5),
    _add("gi_bleed", "MCH", -1.5), _add("liver_disease", "MCH", 1.5), _add("alcohol_use", "MCH", 1.0),
    _mul("ckd", "RDW", 1.05), _mul("liver_disease", "RDW", 1.12), _mul("heart_failure", "RDW", 1.06),
    _mul("malignancy", "RDW", 1.08), _mul("alcohol_use", "RDW", 1.05), _mul("gi_bleed", "RDW", 1.06),
    _mul("sepsis", "RDW", 1.04),
    # white cells and inflammation
    _mul("smoker", "White Blood Cells", 1.1), _mul("copd", "White Blood Cells", 1.05),
    _mul("liver_disease", "White Blood Cells", 0.85), _mul("infection", "White Blood Cells", 1.55, spread=0.4),
    _mul("sepsis", "White Blood Cells", 1.7, spread=0.8), _mul("stemi", "White Blood Cells", 1.3),
    _mul("hyperglycaemic_crisis", "White Blood Cells", 1.5), _mul("gi_bleed", "White Blood Cells", 1.2),
    _mul("respiratory_failure", "White Blood Cells", 1.2), _mul("acute_ischaemia", "White Blood Cells", 1.1),
    _add("copd", "Neutrophils", 2.0), _add("infection", "Neutrophils", 10.0), _add("sepsis", "Neutrophils", 14.0),
    _add("respiratory_failure", "Neutrophils", 6.0), _add("stemi", "Neutrophils", 6.0),
    _add("hyperglycaemic_crisis", "Neutrophils", 8.0), _add("gi_bleed", "Neutrophils", 4.0),
    _add("sepsis", "Monocytes", 1.0),
    _mul("copd", "Eosinophils", 1.3), _mul("sepsis", "Eosinophils", 0.3), _mul("infection", "Eosinophils", 0.6),
    _mul("hyperglycaemic_crisis", "Eosinophils", 0.5),
    _mul("sepsis", "Bands", 4.0, spread=0.5), _mul("infection", "Bands", 1.7),
    _mul("liver_disease", "Platelet Count", 0.55, spread=0.3), _mul("alcohol_use", "Platelet Count", 0.9),
    _mul("ckd", "Platelet Count", 0.95), _mul("malignancy", "Platelet Count", 1.1),
    _mul("sepsis", "Platelet Count", 0.75, spread=0.6), _mul("infection", "Platelet Count", 1.08),
    _mul("gi_bleed", "Platelet Count", 1.05),
    _mul("smoker", "C-Reactive Protein", 1.3), _mul("copd", "C-Reactive Protein", 1.5),
    _mul("liver_disease", "C-Reactive Protein", 1.5), _mul("malignancy", "C-Reactive Protein", 2.0),
    _mul("diabetes", "C-Reactive Protein", 1.3), _mul("ckd", "C-Reactive Protein", 1.3),
    _mul("infection", "C-Reactive Protein", 10.0, spread=0.3), _mul("sepsis", "C-Reactive Protein", 3.0),
    _mul("acute_ischaemia", "C-Reactive Protein", 2.0), _mul("acute_heart_failure", "C-Reactive Protein", 1.6),
    _mul("respiratory_failure", "C-Reactive Protein", 1.8), _mul("gastroenteritis", "C-Reactive Protein", 2.0),
    _mul("liver_disease", "Fibrinogen", 0.7), _mul("malignancy", "Fibrinogen", 1.15),
    _mul("sepsis", "Fibrinogen", 1.3, spread=0.8), _mul("infection", "Fibrinogen", 1.35),
    _mul("acute_ischaemia", "Fibrinogen", 1.1),
    # liver
    _mul("liver_disease", "ALT", 2.3, spread=0.5), _mul("alcohol_use", "ALT", 1.3), _mul("diabetes", "ALT", 1.15),
    _mul("sepsis", "ALT", 1.5), _mul("acute_heart_failure", "ALT", 1.5), _mul("stemi", "ALT", 1.4),
    _mul("alcohol_intoxication", "ALT", 1.2),
    _mul("liver_disease", "AST", 3.0, spread=0.5), _mul("alcohol_use", "AST", 1.6), _mul("sepsis", "AST", 1.6),
    _mul("acute_heart_failure", "AST", 1.4), _mul("stemi", "AST", 2.5), _mul("nstemi", "AST", 1.3),
    _mul("alcohol_intoxication", "AST", 1.5),
    _mul("liver_disease", "Alkaline Phosphatase", 1.8), _mul("malignancy", "Alkaline Phosphatase", 1.35),
    _mul("ckd_esrd", "Alkaline Phosphatase", 1.3), _mul("sepsis", "Alkaline Phosphatase", 1.2),
    _mul("acute_heart_failure", "Alkaline Phosphatase", 1.15),
    _mul("liver_disease", "Bilirubin Total", 3.2, spread=0.5), _mul("alcohol_use", "Bilirubin Total", 1.15),
    _mul("sepsis", "Bilirubin Total", 1.6), _mul("acute_heart_failure", "Bilirubin Total", 1.4),
    _mul("gi_bleed", "Bilirubin Total", 1.1),
    _add("liver_disease", "Direct Bilirubin Fraction", 0.2), _add("sepsis", "Direct Bilirubin Fraction", 0.1),
    _add("liver_disease", "Albumin", -0.9), _add("malignancy", "Albumin", -0.3),
    _add("ckd_advanced", "Albumin", -0.25), _add("heart_failure", "Albumin", -0.15),
    _add("sepsis", "Albumin", -0.55), _add("infection", "Albumin", -0.2),
    _add("acute_heart_failure", "Albumin", -0.2), _add("respiratory_failure", "Albumin", -0.2),
    # coagulation
    _mul("anticoagulant", "INR(PT)", 2.3, spread=0.2), _mul("liver_disease", "INR(PT)", 1.45),
    _mul("sepsis", "INR(PT)", 1.12),
    _mul("liver_disease", "PTT", 1.12), _mul("anticoagulant", "PTT", 1.1), _mul("sepsis", "PTT", 1.08),
    # myocardial injury
    _mul("ckd", "Troponin T", 2.2), _mul("ckd_advanced", "Troponin T", 2.0), _mul("ckd_esrd", "Troponin T", 1.8),
    _mul("heart_failure", "Troponin T", 2.5), _mul("coronary_disease", "Troponin T", 1.3),
    _mul("af_chronic", "Troponin T", 1.3), _mul("lvh", "Troponin T", 1.2),
    _mul("nstemi", "Troponin T", 18.0, spread=0.3), _mul("stemi", "Troponin T", 120.0, spread=0.25),
    _mul("sepsis", "Troponin T", 2.5), _mul("acute_heart_failure", "Troponin T", 2.0),
    _mul("respiratory_failure", "Troponin T", 1.5), _mul("new_onset_af", "Troponin T", 1.5),
    _mul("aki", "Troponin T", 1.3),
    _mul("ckd", "Creatine Kinase", 1.1), _mul("stemi", "Creatine Kinase", 5.0, spread=0.4),
    _mul("nstemi", "Creatine Kinase", 1.6), _mul("sepsis", "Creatine Kinase", 1.3),
    _mul("alcohol_intoxication", "Creatine Kinase", 1.5),
    _mul("ckd", "CK-MB", 1.4), _mul("ckd_esrd", "CK-MB", 1.3), _mul("heart_failure", "CK-MB", 1.2),
    _mul("stemi", "CK-MB", 20.0, spread=0.3), _mul("nstemi", "CK-MB", 4.0),
    # perfusion and gas exchange
    _mul("liver_disease", "Lactate", 1.25), _mul("sepsis", "Lactate", 2.3, spread=0.5),
    _mul("respiratory_failure", "Lactate", 1.3), _mul("hyperglycaemic_crisis", "Lactate", 1.5),
    _mul("gi_bleed", "Lactate", 1.3), _mul("alcohol_intoxication", "Lactate", 1.4), _mul("stemi", "Lactate", 1.3),
    _mul("acute_heart_failure", "Lactate", 1.2),
    _add("copd", "pCO2", 6.0, spread=0.5), _add("respiratory_failure", "pCO2", 18.0, spread=0.6, fraction=0.6),
    _add("sepsis", "pCO2", -4.0), _add("acute_heart_failure", "pCO2", -3.0), _add("infection", "pCO2", -1.0),
    _add("copd", "O2 Saturation", -2.5), _add("heart_failure", "O2 Saturation", -0.5),
    _add("respiratory_failure", "O2 Saturation", -9.0, spread=0.5), _add("sepsis", "O2 Saturation", -2.0),
    _add("acute_heart_failure", "O2 Saturation", -3.0), _add("infection", "O2 Saturation", -1.0),
    _mul("smoker", "Carboxyhemoglobin", 3.5, spread=0.4),
)

# Variables that exist only inside the model (they feed derived labs) and are not MIMIC items.
INTERNAL_VARIABLES = frozenset({"Calcium Corrected", "Anion Gap", "MCH", "Hematocrit Ratio",
                                "Direct Bilirubin Fraction", "Monocytes"})

# Physical bounds of the reported values.
BOUNDS: dict[str, tuple[float, float]] = {
    "Sodium": (105.0, 180.0), "Potassium": (1.6, 9.8), "Bicarbonate": (3.0, 55.0), "Chloride": (60.0, 140.0),
    "Calcium Total": (4.0, 17.0), "Calcium Corrected": (4.5, 17.0), "Free Calcium": (0.5, 2.3),
    "Magnesium": (0.5, 6.0), "Phosphate": (0.5, 15.0), "Hemoglobin": (3.0, 22.0), "Hematocrit": (9.0, 65.0),
    "Red Blood Cells": (1.0, 7.5), "RDW": (10.0, 32.0), "White Blood Cells": (0.2, 90.0),
    "Platelet Count": (5.0, 1200.0), "Neutrophils": (10.0, 97.0), "Lymphocytes": (1.0, 85.0),
    "Eosinophils": (0.0, 40.0), "Basophils": (0.0, 5.0), "Bands": (0.0, 60.0), "Monocytes": (0.5, 25.0),
    "Absolute Lymphocyte Count": (0.05, 60.0), "Absolute Eosinophil Count": (0.0, 10.0),
    "Absolute Basophil Count": (0.0, 2.0), "ALT": (3.0, 8000.0), "AST": (5.0, 12000.0),
    "Alkaline Phosphatase": (15.0, 2500.0), "Bilirubin Total": (0.1, 45.0), "Bilirubin Direct": (0.0, 35.0),
    "Albumin": (1.0, 5.8), "INR(PT)": (0.8, 12.0), "PT": (8.5, 150.0), "PTT": (18.0, 150.0),
    "Fibrinogen": (40.0, 1200.0), "Troponin T": (0.001, 25.0), "Creatine Kinase": (10.0, 100000.0),
    "CK-MB": (0.5, 800.0), "C-Reactive Protein": (0.1, 450.0), "Lactate": (0.3, 25.0), "pCO2": (12.0, 130.0),
    "pH": (6.8, 7.75), "Base Excess": (-30.0, 30.0), "O2 Saturation": (40.0, 100.0),
    "Carboxyhemoglobin": (0.0, 40.0), "Urea Nitrogen": (2.0, 250.0), "Creatinine": (0.2, 20.0),
    "Glucose": (25.0, 1500.0),
}

CHRONIC_CONDITIONS = frozenset({m.name for m in PATIENT_CONDITIONS} | {"ckd_advanced", "ckd_esrd"})
EFFECT_CONDITIONS: tuple[str, ...] = tuple(dict.fromkeys(e.condition for e in LAB_EFFECTS))


def derive(primary: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    """All reported labs (and the internal ones) in natural units from the primary variables."""
    p = primary
    hco3 = p["Bicarbonate"] + 0.35 * (p["pCO2"] - 40.0)  # renal compensation of respiratory disorders
    pco2 = p["pCO2"] + 1.0 * (p["Bicarbonate"] - 25.5)  # respiratory compensation of metabolic ones
    hco3 = np.clip(hco3, *BOUNDS["Bicarbonate"])
    pco2 = np.clip(pco2, *BOUNDS["pCO2"])
    ph = 6.1 + np.log10(hco3 / (0.0307 * pco2))
    anion_gap = p["Anion Gap"] + 0.9 * (p["Lactate"] - 1.2)
    neutrophils = np.minimum(
        p["Neutrophils"], 98.0 - p["Eosinophils"] - p["Basophils"] - p["Monocytes"] - p["Bands"])
    lymph = 100.0 - neutrophils - p["Eosinophils"] - p["Basophils"] - p["Monocytes"] - p["Bands"]
    values = dict(p)
    values.update({
        "Bicarbonate": hco3,
        "pCO2": pco2,
        "pH": ph,
        "Base Excess": 0.93 * (hco3 - 24.4 + 14.8 * (ph - 7.4)),
        "Anion Gap": anion_gap,
        "Chloride": p["Sodium"] - hco3 - anion_gap,
        "Calcium Total": p["Calcium Corrected"] - 0.8 * (4.0 - p["Albumin"]),
        "Free Calcium": p["Calcium Corrected"] * (1.22 / 9.35) * (1.0 - 0.45 * (ph - 7.40)),
        "Hematocrit": p["Hemoglobin"] * p["Hematocrit Ratio"],
        "Red Blood Cells": p["Hemoglobin"] * 10.0 / p["MCH"],
        "Neutrophils": neutrophils,
        "Lymphocytes": lymph,
        "Absolute Lymphocyte Count": p["White Blood Cells"] * lymph / 100.0,
        "Absolute Eosinophil Count": p["White Blood Cells"] * p["Eosinophils"] / 100.0,
        "Absolute Basophil Count": p["White Blood Cells"] * p["Basophils"] / 100.0,
        "PT": 11.3 * p["INR(PT)"],
        "Bilirubin Direct": p["Bilirubin Total"] * np.clip(p["Direct Bilirubin Fraction"], 0.05, 0.9),
    })
    return {name: np.clip(v, *BOUNDS[name]) if name in BOUNDS else v for name, v in values.items()}


REPORTED_LABS: tuple[str, ...] = tuple(item.name for item in LAB_ITEMS)


class LabTruthModel:
    """Holds the per-patient and per-visit noise of every variable; evaluates truths for any conditions."""

    def __init__(self, patient: NDArray[np.int64], n_patients: int, age: FloatArray, female: NDArray[np.bool_],
                 rng: np.random.Generator) -> None:
        n_vars = len(PRIMARY_VARIABLES)
        n = patient.size
        self.n_visits = n
        self.female = female
        # a person's labs are correlated across visits: ~55 % of the baseline variance is personal
        patient_noise = rng.standard_normal((n_patients, n_vars))
        visit_noise = rng.standard_normal((n, n_vars))
        self._baseline = np.empty((n, n_vars))
        age10 = (age - 60.0) / 10.0
        for j, var in enumerate(PRIMARY_VARIABLES):
            mean = var.mean if var.mean_female is None else np.where(female, var.mean_female, var.mean)
            centre = np.log(mean) if var.scale == "log" else mean
            noise = 0.74 * patient_noise[patient, j] + 0.67 * visit_noise[:, j]
            self._baseline[:, j] = centre + var.age_slope * np.maximum(age10, -2.0) + var.sd * noise
        self._effect_z = rng.standard_normal((n, len(LAB_EFFECTS)))
        group_keys = [e.group or f"{e.condition}:{e.variable}" for e in LAB_EFFECTS]
        unique_groups = list(dict.fromkeys(group_keys))
        group_u = rng.random((n, len(unique_groups)))
        self._effect_u = group_u[:, [unique_groups.index(k) for k in group_keys]]

    def evaluate(self, flags: Mapping[str, NDArray[np.bool_]],
                 rows: NDArray[np.int64] | None = None) -> tuple[FloatArray, FloatArray]:
        """(chronic, arrival) matrices (visits × primary variables) in working units (log for log scale).

        `chronic` includes only patient-level conditions and medications; `arrival` adds the acute
        conditions of the visit, at their peak. With `rows`, only those visits are evaluated and
        `flags` holds their values only.
        """
        index = slice(None) if rows is None else rows
        chronic = self._baseline[index].copy()
        effect_u, effect_z = self._effect_u[index], self._effect_z[index]
        acute = np.zeros_like(chronic)
        for k, effect in enumerate(LAB_EFFECTS):
            carrier = flags[effect.condition] & (effect_u[:, k] < effect.fraction)
            if not carrier.any():
                continue
            shift = effect.shift * np.maximum(1.0 + effect.spread * effect_z[:, k], 0.0)
            target = chronic if effect.condition in CHRONIC_CONDITIONS else acute
            target[:, PRIMARY_INDEX[effect.variable]] += np.where(carrier, shift, 0.0)
        return chronic, chronic + acute


def time_profile(minutes: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Fraction of the acute part present `minutes` after arrival: (per-variable matrix rows × vars).

    NaN minutes mean "outside any ED stay" (outpatient draw or ECG): only the chronic part.
    """
    m = np.asarray(minutes, dtype=np.float64)[:, None]
    outside = np.isnan(m)
    m = np.nan_to_num(m, nan=0.0)
    factors = np.ones((m.shape[0], len(PRIMARY_VARIABLES)))
    for j, var in enumerate(PRIMARY_VARIABLES):
        if var.rises:
            factors[:, j] = (0.45 + 0.55 * (1.0 - np.exp(-m[:, 0] / 150.0)))
        elif var.half_life_min is not None:
            factors[:, j] = 0.5 ** (np.maximum(m[:, 0] - 30.0, 0.0) / var.half_life_min)
    factors[outside[:, 0]] = 0.0
    return factors, outside[:, 0]


def to_natural(working: FloatArray) -> dict[str, FloatArray]:
    """Working-scale primary matrix → dict of primary values in natural units."""
    out: dict[str, FloatArray] = {}
    for j, var in enumerate(PRIMARY_VARIABLES):
        out[var.name] = np.exp(working[:, j]) if var.scale == "log" else working[:, j]
    return out


def values_at(chronic: FloatArray, arrival: FloatArray, visit: NDArray[np.int64],
              minutes: FloatArray) -> dict[str, FloatArray]:
    """All lab values (natural units, derived labs included) for rows (visit, minutes since intime)."""
    factors, _ = time_profile(minutes)
    working = chronic[visit] + (arrival[visit] - chronic[visit]) * factors
    return derive(to_natural(working))


def arrival_values(arrival: FloatArray) -> dict[str, FloatArray]:
    """Values at the acute peak (what the ground truth reports as the visit's true labs)."""
    return derive(to_natural(arrival))
