"""Build a FHIR R4 Bundle from `predict` results: what an EHR or research platform can ingest.

Per ECG one DiagnosticReport (LOINC 11524-6 "EKG study", category v2-0074 "EC", status
`preliminary`: a model output awaiting clinician review) whose `result` lists one Observation per
positive diagnosis (code: ICD-10-CM, interpretation POS) and per predicted lab abnormality (code:
the lab's LOINC, interpretation H or L). The model's probability and decision threshold travel as
Observation components (UCUM unit "1"), never as a fake lab value. Measured ECG intervals and axes
(`measurements`) are Observations with LOINC codes (8867-4 heart rate, 8625-6 PR, 8633-0 QRS,
8634-8 QT, 8636-3 QTc, 8626-4/8632-2/8638-9 P/QRS/T axes) and UCUM values. The builder emits plain JSON
dicts; tests validate them against the R4 models of `fhir.resources`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any, Protocol

__all__ = ["LOINC_LABS", "OUTPUT_CODE_SYSTEM", "diagnostic_report_bundle", "icd10cm_dotted"]

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
UCUM = "http://unitsofmeasure.org"
# ecgkt's own codes for the model-output components (probability, threshold).
OUTPUT_CODE_SYSTEM = "urn:ecgkt:fhir:model-output"
_INTERPRETATION_DISPLAY = {"H": "High", "L": "Low", "POS": "Positive"}
# ECG measurements (ecgkt.measure) as LOINC-coded Observations with UCUM units.
MEASUREMENT_LOINC: dict[str, tuple[str, str, str]] = {
    "heart_rate_bpm": ("8867-4", "Heart rate", "/min"),
    "pr_ms": ("8625-6", "P-R Interval", "ms"),
    "qrs_ms": ("8633-0", "QRS duration", "ms"),
    "qt_ms": ("8634-8", "Q-T interval", "ms"),
    "qtc_bazett_ms": ("8636-3", "Q-T interval corrected", "ms"),
    "p_axis_deg": ("8626-4", "P wave axis", "deg"),
    "qrs_axis_deg": ("8632-2", "QRS axis", "deg"),
    "t_axis_deg": ("8638-9", "T wave axis", "deg"),
}


def _load_loinc() -> dict[str, dict[str, str]]:
    text = files("ecgkt.fhir").joinpath("loinc_labs.json").read_text(encoding="utf-8")
    labs: dict[str, dict[str, str]] = json.loads(text)["labs"]
    return labs


LOINC_LABS: dict[str, dict[str, str]] = _load_loinc()


class _Diagnosis(Protocol):
    code: str
    title: str
    probability: float
    threshold: float
    positive: bool


class _Lab(Protocol):
    label: str
    probability: float
    threshold: float
    positive: bool


class _Result(Protocol):
    source: str
    ecgkt_version: str
    notes: list[str]
    measurements: dict[str, Any] | None

    @property
    def diagnoses(self) -> Sequence[_Diagnosis]: ...

    @property
    def labs(self) -> Sequence[_Lab]: ...


def icd10cm_dotted(code: str) -> str:
    """MIMIC stores ICD-10-CM without the dot ("I4891"); FHIR's ICD-10-CM system uses "I48.91"."""
    code = code.strip().upper()
    return code if len(code) <= 3 or "." in code else f"{code[:3]}.{code[3:]}"


def _components(probability: float, threshold: float) -> list[dict[str, Any]]:
    return [
        {
            "code": {"coding": [{"system": OUTPUT_CODE_SYSTEM, "code": name, "display": f"model {name}"}]},
            "valueQuantity": {"value": round(float(value), 6), "unit": "1", "system": UCUM, "code": "1"},
        }
        for name, value in (("probability", probability), ("threshold", threshold))
    ]


def _observation(code: Mapping[str, Any], interpretation: str, probability: float, threshold: float,
                 text: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": code,
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": interpretation,
                                        "display": _INTERPRETATION_DISPLAY[interpretation]}]}],
        "method": {"text": "ecgkt ECG-only model prediction (not a measured value)"},
        "note": [{"text": text}],
        "component": _components(probability, threshold),
    }


def diagnostic_report_bundle(results: Sequence[_Result], *, issued: str | None = None) -> dict[str, Any]:
    """A `collection` Bundle: per result a DiagnosticReport plus its Observations (urn:uuid links).

    Lab labels are `<lab>_high` / `<lab>_low` (CardioLab); a lab without a LOINC entry is an error
    (the table covers all 45 protocol labs).
    """
    entries: list[dict[str, Any]] = []
    for result in results:
        observation_refs: list[dict[str, str]] = []
        for diagnosis in result.diagnoses:
            if not diagnosis.positive:
                continue
            code = {"coding": [{"system": ICD10CM, "code": icd10cm_dotted(diagnosis.code), "display": diagnosis.title}],
                    "text": diagnosis.title}
            text = f"Predicted from the ECG: {diagnosis.title} (p = {diagnosis.probability:.3f})"
            observation = _observation(code, "POS", diagnosis.probability, diagnosis.threshold, text)
            url = f"urn:uuid:{uuid.uuid4()}"
            entries.append({"fullUrl": url, "resource": observation})
            observation_refs.append({"reference": url})
        for lab in result.labs:
            if not lab.positive:
                continue
            name, _, direction = lab.label.rpartition("_")
            if direction not in ("high", "low") or name not in LOINC_LABS:
                raise ValueError(f"lab label {lab.label!r} has no LOINC code in ecgkt/fhir/loinc_labs.json")
            entry = LOINC_LABS[name]
            code = {"coding": [{"system": LOINC, "code": entry["loinc"], "display": entry["display"]}], "text": name}
            text = f"Predicted from the ECG: {name} {direction} (p = {lab.probability:.3f})"
            observation = _observation(code, "H" if direction == "high" else "L", lab.probability, lab.threshold, text)
            url = f"urn:uuid:{uuid.uuid4()}"
            entries.append({"fullUrl": url, "resource": observation})
            observation_refs.append({"reference": url})
        n_findings = len(observation_refs)
        for key, value in (result.measurements or {}).items():
            if key not in MEASUREMENT_LOINC or value is None:
                continue
            loinc, display, unit = MEASUREMENT_LOINC[key]
            measured = {
                "resourceType": "Observation",
                "status": "preliminary",
                "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
                "method": {"text": "ecgkt.measure: median beat, 12-lead spatial delineation"},
                "valueQuantity": {"value": round(float(value), 1), "unit": unit, "system": UCUM, "code": unit},
            }
            url = f"urn:uuid:{uuid.uuid4()}"
            entries.append({"fullUrl": url, "resource": measured})
            observation_refs.append({"reference": url})
        report: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "status": "preliminary",
            "category": [{"coding": [{"system": CATEGORY, "code": "EC", "display": "Electrocardiac"}]}],
            "code": {"coding": [{"system": LOINC, "code": "11524-6", "display": "EKG study"}]},
            "conclusion": (
                f"ecgkt {result.ecgkt_version} on {result.source}: {n_findings} finding(s) above the model's "
                "thresholds, plus measured intervals. Research software output; requires clinician review."
            ),
            "result": observation_refs,
        }
        if issued is not None:
            report["issued"] = issued
        report_entry = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": report}
        entries.insert(len(entries) - len(observation_refs), report_entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}
