"""Protocol options checked against the public MDS-ED / CardioLab / ECG-MIMIC code (issue 14).

What the reference code does (files read 2026-12-04):

* AI4HealthUOL/MDS-ED `src/full_preprocessing.py`
  (https://github.com/AI4HealthUOL/MDS-ED/blob/main/src/full_preprocessing.py):
  - labs: keeps the most common fluid per lab label, then sets `valuenum` to NaN above fixed
    per-lab limits (absolute basophil and eosinophil counts > 20, absolute lymphocyte count > 100,
    ALT, alkaline phosphatase, AST, CK, glucose, lactate and platelet count > 2000) — this module's
    `MDS_ED_LAB_UPPER_LIMITS`, applied by `clean_lab_rows` (config `lab_outlier_rule="mds-ed"`,
    the default; `"none"` keeps every numeric value, ecgkt's earlier behaviour);
  - vitals: NaN for temperature < 50 or > 150 °F, heart rate > 700, respiratory rate > 300,
    O2 saturation outside 0–100, SBP or DBP > 500. ecgkt's `cohort.tables.VITAL_RANGES` are
    stricter physiological ranges (and repair °C temperatures); kept, as they remove a superset
    of what MDS-ED removes;
  - triage acuity: used as a *numeric* feature (median-imputed, with a missing mask) — the same as
    ecgkt (`cohort.features`: acuity numeric, ESI 1–5 is ordinal), so no option was added;
  - ECGs within [intime, intime + 90 min]; vitals and labs in the same window; omr within ±30 days
    (MDS-ED takes the first omr row of the window, ecgkt the closest); labels kept with ≥ 230
    occurrences; ICD codes truncated to 5 characters, trailing X removed, propagated to all 3–5
    character ancestors — as ecgkt.
* AI4HealthUOL/ECG-MIMIC `src/full_preprocessing.py`
  (https://github.com/AI4HealthUOL/ECG-MIMIC/blob/main/src/full_preprocessing.py), which builds
  the `all_diag_all` column MDS-ED reads: `all_diag_hosp` = hospital codes of the admission during
  which the ECG was taken ∪ hospital codes of the ED stay's `hadm_id`; `all_diag_all` =
  `all_diag_hosp` if non-empty, **else** the ED codes. So MDS-ED does *not* take the union of ED and
  hospital codes: it takes hospital codes when the stay has them and ED codes otherwise — what
  ecgkt's `cohort.icd.load_stay_codes` already does. No union option was added. (MDS-ED also drops
  ECGs whose code list is empty; ecgkt keeps them with all-negative labels.)
* AI4HealthUOL/CardioLab `README.md` (https://github.com/AI4HealthUOL/CardioLab): lab targets are the
  lab value closest to the ECG within 60 min, vitals within 30 min — ecgkt's lab labels follow the
  60-minute rule.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from ecgkt.mimic.labs import LAB_ITEMS

__all__ = ["MDS_ED_LAB_UPPER_LIMITS", "LabOutlierRule", "clean_lab_rows", "lab_upper_limits_by_itemid"]

LabOutlierRule = Literal["mds-ed", "none"]

# MIMIC d_labitems label → value above which MDS-ED discards the measurement.
MDS_ED_LAB_UPPER_LIMITS: dict[str, float] = {
    "Absolute Basophil Count": 20.0,
    "Absolute Eosinophil Count": 20.0,
    "Absolute Lymphocyte Count": 100.0,
    "Alanine Aminotransferase (ALT)": 2000.0,
    "Alkaline Phosphatase": 2000.0,
    "Asparate Aminotransferase (AST)": 2000.0,
    "Creatine Kinase (CK)": 2000.0,
    "Glucose": 2000.0,
    "Lactate": 2000.0,
    "Platelet Count": 2000.0,
}


def lab_upper_limits_by_itemid(rule: LabOutlierRule) -> dict[int, float]:
    if rule == "none":
        return {}
    return {item.itemid: MDS_ED_LAB_UPPER_LIMITS[item.label] for item in LAB_ITEMS
            if item.label in MDS_ED_LAB_UPPER_LIMITS}


def clean_lab_rows(rows: pl.DataFrame, rule: LabOutlierRule) -> pl.DataFrame:
    """Drop lab rows (columns itemid, valuenum, ...) whose value exceeds the rule's per-lab limit."""
    limits = lab_upper_limits_by_itemid(rule)
    if not limits or rows.height == 0:
        return rows
    limit = pl.col("itemid").replace_strict(limits, default=None, return_dtype=pl.Float64)
    return rows.filter(limit.is_null() | (pl.col("valuenum") <= limit))
