"""FHIR R4 output validated against the models of fhir.resources (a maintained FHIR library)."""

from __future__ import annotations

import json

import pytest

from ecgkt.fhir import LOINC_LABS, diagnostic_report_bundle, icd10cm_dotted
from ecgkt.mimic.labs import LAB_ITEMS
from ecgkt.predict.engine import DiagnosisPrediction, LabPrediction, PredictionResult

fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")


def _result() -> PredictionResult:
    return PredictionResult(
        source="ecg.xml", ecgkt_version="test", n_windows=4, notes=[],
        diagnoses=[
            DiagnosisPrediction(code="I4891", title="Unspecified atrial fibrillation", probability=0.8, threshold=0.3,
                                positive=True, validation_auroc=0.9, supporting_labs=[]),
            DiagnosisPrediction(code="I10", title="Essential hypertension", probability=0.1, threshold=0.3,
                                positive=False, validation_auroc=0.7, supporting_labs=[]),
        ],
        labs=[
            LabPrediction(label="Potassium_high", probability=0.6, threshold=0.2, positive=True, validation_auroc=0.7),
            LabPrediction(label="Hemoglobin_low", probability=0.5, threshold=0.3, positive=True, validation_auroc=0.7),
            LabPrediction(label="Sodium_low", probability=0.05, threshold=0.3, positive=False, validation_auroc=0.6),
        ],
        measurements={"heart_rate_bpm": 72.4, "pr_ms": None, "qrs_ms": 92.0, "flags": ["no P wave"]},
    )


def test_loinc_table_covers_the_45_protocol_labs() -> None:
    assert set(LOINC_LABS) == {item.name for item in LAB_ITEMS}
    assert all(entry["loinc"].count("-") == 1 for entry in LOINC_LABS.values())


def test_bundle_validates_and_holds_one_observation_per_positive_finding() -> None:
    bundle = diagnostic_report_bundle([_result()], issued="2026-01-01T00:00:00Z")
    parsed = fhir_bundle.Bundle.model_validate(json.loads(json.dumps(bundle)))  # raises on invalid R4 content
    resources = [entry.resource for entry in parsed.entry]
    reports = [r for r in resources if r.__resource_type__ == "DiagnosticReport"]
    observations = [r for r in resources if r.__resource_type__ == "Observation"]
    measured = [o for o in observations if o.valueQuantity is not None]
    assert {(o.code.coding[0].code, float(o.valueQuantity.value), o.valueQuantity.code) for o in measured} == {
        ("8867-4", 72.4, "/min"), ("8633-0", 92.0, "ms")  # PR is None: no Observation, no invented value
    }
    observations = [o for o in observations if o.valueQuantity is None]
    assert len(reports) == 1 and len(observations) == 3
    assert len(reports[0].result) == 5
    codes = {(o.code.coding[0].system, o.code.coding[0].code, o.interpretation[0].coding[0].code) for o in observations}
    assert codes == {
        ("http://hl7.org/fhir/sid/icd-10-cm", "I48.91", "POS"),
        ("http://loinc.org", "2823-3", "H"),
        ("http://loinc.org", "718-7", "L"),
    }
    urls = {entry.fullUrl for entry in parsed.entry}
    assert {ref.reference for ref in reports[0].result} <= urls


def test_icd10cm_dotting_and_unknown_lab() -> None:
    assert icd10cm_dotted("I4891") == "I48.91" and icd10cm_dotted("I10") == "I10"
    result = _result()
    result.labs[0].label = "Unobtainium_high"
    with pytest.raises(ValueError, match="Unobtainium_high"):
        diagnostic_report_bundle([result])
