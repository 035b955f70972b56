"""File layouts and column schemas of the three MIMIC folders (design.md §3).

Column tuples list the columns in MIMIC's order; the synthetic writer emits exactly these and the
builder checks for them, naming the file and the missing column when they are absent.
"""

from __future__ import annotations

from pathlib import Path

# ---- MIMIC-IV-ECG ---------------------------------------------------------------------------
ECG_SAMPLING_RATE_HZ = 500
ECG_NUM_SAMPLES = 5000
ECG_ADC_GAIN = 200.0  # adu per mV
ECG_FORMAT = "16"
# MIMIC-IV-ECG stores aVF *before* aVL; always select leads by name.
MIMIC_LEAD_ORDER: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6",
)
# Sentinels MIMIC uses in machine_measurements for "not measurable".
MEASUREMENT_SENTINELS: tuple[int, ...] = (29999, 32767, -32768, 65535)

RECORD_LIST_COLUMNS = ("subject_id", "study_id", "file_name", "ecg_time", "path")
MACHINE_MEASUREMENTS_COLUMNS = (
    "subject_id", "study_id", "cart_id", "ecg_time",
    *(f"report_{i}" for i in range(18)),
    "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end",
    "p_axis", "qrs_axis", "t_axis",
)

# ---- MIMIC-IV-ED -------------------------------------------------------------------------------
EDSTAYS_COLUMNS = (
    "subject_id", "hadm_id", "stay_id", "intime", "outtime", "gender", "race",
    "arrival_transport", "disposition",
)
TRIAGE_COLUMNS = (
    "subject_id", "stay_id", "temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "pain",
    "acuity", "chiefcomplaint",
)
VITALSIGN_COLUMNS = (
    "subject_id", "stay_id", "charttime", "temperature", "heartrate", "resprate", "o2sat", "sbp",
    "dbp", "rhythm", "pain",
)
ED_DIAGNOSIS_COLUMNS = ("subject_id", "stay_id", "seq_num", "icd_code", "icd_version", "icd_title")

# ---- MIMIC-IV hosp -----------------------------------------------------------------------------
PATIENTS_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod")
ADMISSIONS_COLUMNS = (
    "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type",
    "admit_provider_id", "admission_location", "discharge_location", "insurance", "language",
    "marital_status", "race", "edregtime", "edouttime", "hospital_expire_flag",
)
LABEVENTS_COLUMNS = (
    "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "order_provider_id",
    "charttime", "storetime", "value", "valuenum", "valueuom", "ref_range_lower",
    "ref_range_upper", "flag", "priority", "comments",
)
D_LABITEMS_COLUMNS = ("itemid", "label", "fluid", "category")
OMR_COLUMNS = ("subject_id", "chartdate", "seq_num", "result_name", "result_value")
DIAGNOSES_ICD_COLUMNS = ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
D_ICD_DIAGNOSES_COLUMNS = ("icd_code", "icd_version", "long_title")

VITAL_COLUMNS: tuple[str, ...] = ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp")


def wfdb_record_dir(subject_id: int, study_id: int) -> str:
    """Relative folder of a MIMIC-IV-ECG record: files/p{first 4 digits}/p{subject}/s{study}."""
    subject = str(subject_id)
    return f"files/p{subject[:4]}/p{subject}/s{study_id}"


class MimicFolders:
    """The three roots ecgkt reads, and the files it expects inside each."""

    def __init__(self, ecg: Path, hosp: Path, ed: Path) -> None:
        self.ecg, self.hosp, self.ed = Path(ecg), Path(hosp), Path(ed)

    @classmethod
    def from_synthetic_root(cls, root: Path) -> MimicFolders:
        """The layout `ecgkt synth --out ROOT` writes."""
        root = Path(root)
        return cls(root / "mimic-iv-ecg", root / "mimic-iv" / "hosp", root / "mimic-iv-ed" / "ed")

    @property
    def record_list(self) -> Path:
        return self.ecg / "record_list.csv"

    @property
    def machine_measurements(self) -> Path:
        return self.ecg / "machine_measurements.csv"

    def hosp_table(self, name: str) -> Path:
        return self.hosp / f"{name}.csv.gz"

    def ed_table(self, name: str) -> Path:
        return self.ed / f"{name}.csv.gz"
