"""The service's OpenAPI schema pieces: response models, error responses and the upload request body.

Kept apart from the routes so the schema reads as one document (what a client may send and get back).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ecgkt.serve.settings import Backend
from ecgkt.signals.units import UNIT_OPTIONS

__all__ = [
    "ERROR_RESPONSES",
    "JSON_ERROR_RESPONSES",
    "UPLOAD_REQUEST_BODY",
    "ErrorResponse",
    "HealthResponse",
    "LabelInfo",
    "ModelInfo",
]

# ---- response models (they make the OpenAPI schema precise) ---------------------------------


class ErrorResponse(BaseModel):
    """Every refusal: a stable machine-readable `error` kind and a human `detail` naming the file."""

    error: str
    detail: str


class HealthResponse(BaseModel):
    status: str
    backend: Backend
    model_loaded: bool
    ecgkt_version: str


class LabelInfo(BaseModel):
    label: str
    title: str | None = None
    validation_auroc: float | None = None
    threshold: float | None = None


class ModelInfo(BaseModel):
    """What a client needs to interpret predictions: labels, validation metrics, calibration, versions."""

    ecgkt_version: str
    bundle_ecgkt_version: str
    bundle_format_version: int
    bundle_created_utc: str
    backend: Backend
    diagnoses: list[LabelInfo]
    labs: list[LabelInfo]
    validation_macro_auroc_diagnosis: float | None
    validation_macro_auroc_lab: float | None
    calibrated: bool
    preprocessing: dict[str, Any]
    training: dict[str, Any]
    limits: dict[str, float]


_ERROR_DESCRIPTIONS: tuple[tuple[int, str], ...] = (
    (400, "Malformed request or unexpected combination of files"),
    (413, "Upload larger than the configured limit"),
    (415, "Unsupported content type or unrecognised file"),
    (422, "The upload was recognised but is not a usable ECG (the detail says why)"),
    (503, "Too many requests in progress"),
    (504, "Parsing and inference did not finish within the timeout"),
)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description} for code, description in _ERROR_DESCRIPTIONS
}
# For routes whose success response is HTML, FastAPI would list a `model` under text/html: errors are
# JSON whatever the route returns, so they reference the schema explicitly.
JSON_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for code, description in _ERROR_DESCRIPTIONS
}

UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "One ECG: a WFDB .hea with its .dat, a DICOM, a .npy (with an "
                        "optional sidecar .json), a .npz, or a .json document as for the JSON body.",
                    },
                    "sampling_rate_hz": {"type": "number", "exclusiveMinimum": 0},
                    "leads": {"type": "string", "description": "Lead names, comma-separated or a JSON list."},
                    "units": {"type": "string", "enum": list(UNIT_OPTIONS)},
                    "missing_leads": {"type": "string", "enum": ["error", "zero"]},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["signal", "sampling_rate_hz"],
                "additionalProperties": False,
                "properties": {
                    "signal": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": ["number", "null"]}},
                        "description": "leads × samples (or samples × leads), physical units; null = missing",
                    },
                    "sampling_rate_hz": {"type": "number", "exclusiveMinimum": 0},
                    "leads": {"type": "array", "items": {"type": "string"}},
                    "units": {"type": "string", "enum": list(UNIT_OPTIONS)},
                    "missing_leads": {"type": "string", "enum": ["error", "zero"]},
                },
            },
            "example": {
                "signal": [[0.0] * 4] * 12,
                "sampling_rate_hz": 500,
                "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
                "units": "mV",
            },
        },
    },
}
