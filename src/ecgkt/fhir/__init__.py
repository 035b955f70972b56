"""FHIR R4 output: predictions as a DiagnosticReport with one Observation per finding, in a Bundle."""

from ecgkt.fhir.report import LOINC_LABS, diagnostic_report_bundle, icd10cm_dotted

__all__ = ["LOINC_LABS", "diagnostic_report_bundle", "icd10cm_dotted"]
