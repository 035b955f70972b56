"""The 45 laboratory items of the MDS-ED protocol, with their MIMIC-IV `d_labitems` identity.

Item ids, labels, fluids and units follow MIMIC-IV hosp `d_labitems` (as used by the public
mimic-code concept queries). Reference ranges are the ranges MIMIC typically stores in
`labevents.ref_range_lower/upper`; `None` means MIMIC rows usually carry no range for the item,
so no `_low`/`_high` abnormality label can be derived from it (CardioLab rule).
Where ranges differ by sex, the `female_*` fields hold the female range.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabItem:
    """One lab of the protocol: `name` is the feature/label stem used everywhere in ecgkt."""

    name: str
    itemid: int
    label: str  # d_labitems.label, exactly as MIMIC spells it
    fluid: str
    category: str
    unit: str
    ref_low: float | None
    ref_high: float | None
    female_ref_low: float | None = None
    female_ref_high: float | None = None
    decimals: int = 1

    def reference_range(self, female: bool) -> tuple[float | None, float | None]:
        if female and self.female_ref_low is not None:
            return self.female_ref_low, self.female_ref_high
        return self.ref_low, self.ref_high


_B, _BG = "Blood", "Blood Gas"
_CH, _HE = "Chemistry", "Hematology"

LAB_ITEMS: tuple[LabItem, ...] = (
    LabItem("Absolute Basophil Count", 52069, "Absolute Basophil Count", _B, _HE, "K/uL", 0.01, 0.08, decimals=2),
    LabItem("Absolute Eosinophil Count", 52073, "Absolute Eosinophil Count", _B, _HE, "K/uL", 0.04, 0.45, decimals=2),
    LabItem("Absolute Lymphocyte Count", 51133, "Absolute Lymphocyte Count", _B, _HE, "K/uL", 1.2, 3.7, decimals=2),
    LabItem("ALT", 50861, "Alanine Aminotransferase (ALT)", _B, _CH, "IU/L", 0.0, 40.0, decimals=0),
    LabItem("Albumin", 50862, "Albumin", _B, _CH, "g/dL", 3.5, 5.2),
    LabItem("Alkaline Phosphatase", 50863, "Alkaline Phosphatase", _B, _CH, "IU/L", 40.0, 130.0, 35.0, 105.0, 0),
    LabItem("AST", 50878, "Asparate Aminotransferase (AST)", _B, _CH, "IU/L", 0.0, 40.0, decimals=0),
    LabItem("Bands", 51144, "Bands", _B, _HE, "%", 0.0, 5.0, decimals=0),
    LabItem("Base Excess", 50802, "Base Excess", _B, "Blood Gas", "mEq/L", None, None, decimals=0),
    LabItem("Basophils", 51146, "Basophils", _B, _HE, "%", 0.0, 1.0),
    LabItem("Bicarbonate", 50882, "Bicarbonate", _B, _CH, "mEq/L", 22.0, 32.0, decimals=0),
    LabItem("Bilirubin Direct", 50883, "Bilirubin, Direct", _B, _CH, "mg/dL", 0.0, 0.3),
    LabItem("Bilirubin Total", 50885, "Bilirubin, Total", _B, _CH, "mg/dL", 0.0, 1.5),
    LabItem("C-Reactive Protein", 50889, "C-Reactive Protein", _B, _CH, "mg/L", 0.0, 5.0),
    LabItem("Calcium Total", 50893, "Calcium, Total", _B, _CH, "mg/dL", 8.4, 10.3),
    LabItem("Carboxyhemoglobin", 50805, "Carboxyhemoglobin", _B, _BG, "%", None, None),
    LabItem("Chloride", 50902, "Chloride", _B, _CH, "mEq/L", 96.0, 108.0, decimals=0),
    LabItem("Creatine Kinase", 50910, "Creatine Kinase (CK)", _B, _CH, "IU/L", 47.0, 322.0, 26.0, 192.0, 0),
    LabItem("CK-MB", 50911, "Creatine Kinase, MB Isoenzyme", _B, _CH, "ng/mL", 0.0, 10.0, decimals=0),
    LabItem("Creatinine", 50912, "Creatinine", _B, _CH, "mg/dL", 0.5, 1.2, 0.4, 1.1),
    LabItem("Eosinophils", 51200, "Eosinophils", _B, _HE, "%", 1.0, 4.0),
    LabItem("Fibrinogen", 51214, "Fibrinogen, Functional", _B, _HE, "mg/dL", 200.0, 400.0, decimals=0),
    LabItem("Free Calcium", 50808, "Free Calcium", _B, _BG, "mmol/L", 1.12, 1.32, decimals=2),
    LabItem("Glucose", 50931, "Glucose", _B, _CH, "mg/dL", 70.0, 100.0, decimals=0),
    LabItem("Hematocrit", 51221, "Hematocrit", _B, _HE, "%", 40.0, 51.0, 34.0, 45.0),
    LabItem("Hemoglobin", 51222, "Hemoglobin", _B, _HE, "g/dL", 13.7, 17.5, 11.2, 15.7),
    LabItem("INR(PT)", 51237, "INR(PT)", _B, _HE, "", 0.9, 1.1),
    LabItem("Lactate", 50813, "Lactate", _B, _BG, "mmol/L", 0.5, 2.0),
    LabItem("Lymphocytes", 51244, "Lymphocytes", _B, _HE, "%", 18.0, 42.0),
    LabItem("Magnesium", 50960, "Magnesium", _B, _CH, "mg/dL", 1.6, 2.6),
    LabItem("Neutrophils", 51256, "Neutrophils", _B, _HE, "%", 34.0, 71.0),
    LabItem("O2 Saturation", 50817, "Oxygen Saturation", _B, _BG, "%", None, None, decimals=0),
    LabItem("PT", 51274, "PT", _B, _HE, "sec", 9.4, 12.5),
    LabItem("PTT", 51275, "PTT", _B, _HE, "sec", 25.0, 36.5),
    LabItem("Phosphate", 50970, "Phosphate", _B, _CH, "mg/dL", 2.7, 4.5),
    LabItem("Platelet Count", 51265, "Platelet Count", _B, _HE, "K/uL", 150.0, 400.0, decimals=0),
    LabItem("Potassium", 50971, "Potassium", _B, _CH, "mEq/L", 3.3, 5.1),
    LabItem("RDW", 51277, "RDW", _B, _HE, "%", 10.5, 15.5),
    LabItem("Red Blood Cells", 51279, "Red Blood Cells", _B, _HE, "m/uL", 4.6, 6.1, 3.9, 5.2, 2),
    LabItem("Sodium", 50983, "Sodium", _B, _CH, "mEq/L", 133.0, 145.0, decimals=0),
    LabItem("Troponin T", 51003, "Troponin T", _B, _CH, "ng/mL", 0.0, 0.01, decimals=2),
    LabItem("Urea Nitrogen", 51006, "Urea Nitrogen", _B, _CH, "mg/dL", 6.0, 20.0, decimals=0),
    LabItem("White Blood Cells", 51301, "White Blood Cells", _B, _HE, "K/uL", 4.0, 10.0),
    LabItem("pCO2", 50818, "pCO2", _B, _BG, "mm Hg", 35.0, 45.0, decimals=0),
    LabItem("pH", 50820, "pH", _B, _BG, "units", 7.35, 7.45, decimals=2),
)

LAB_BY_ITEMID: dict[int, LabItem] = {item.itemid: item for item in LAB_ITEMS}
LAB_BY_NAME: dict[str, LabItem] = {item.name: item for item in LAB_ITEMS}

assert len(LAB_ITEMS) == 45 and len(LAB_BY_ITEMID) == 45, "the protocol has exactly 45 distinct labs"
