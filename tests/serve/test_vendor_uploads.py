"""The service accepts vendor files (GE MUSE/Philips/HL7 XML, SCP-ECG, EDF) and answers FHIR on /v1/predict/fhir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ecgkt.convert.writers import WRITERS
from ecgkt.signals.leads import CANONICAL_LEADS
from ecgkt.signals.readers import read_ecg

fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")


@pytest.mark.parametrize(("fmt", "suffix"), [("ge-muse", ".xml"), ("hl7-aecg", ".xml"), ("edf", ".edf"),
                                             ("scp-ecg", ".scp"), ("philips", ".xml")])
def test_vendor_upload_predicts_like_the_cli(client: TestClient, wfdb_record: Path, tmp_path: Path, fmt: str,
                                             suffix: str) -> None:
    original = read_ecg(wfdb_record)
    path = tmp_path / f"x{suffix}"
    WRITERS[fmt](path, original.signal_mv.T.astype(np.float64), CANONICAL_LEADS, original.sampling_rate_hz)
    # A neutral upload name: recognition is by content only.
    upload = {"files": ("upload.bin", path.read_bytes(), "application/octet-stream")}
    response = client.post("/v1/predict", files=upload)
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "upload.bin"
    assert response.json()["measurements"]["heart_rate_bpm"] is not None


def test_fhir_endpoint_returns_a_valid_bundle(client: TestClient, wfdb_record: Path, tmp_path: Path) -> None:
    original = read_ecg(wfdb_record)
    path = tmp_path / "ecg.xml"
    WRITERS["ge-muse"](path, original.signal_mv.T.astype(np.float64), CANONICAL_LEADS, original.sampling_rate_hz)
    response = client.post("/v1/predict/fhir", files={"files": ("ecg.xml", path.read_bytes(), "application/xml")})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    parsed = fhir_bundle.Bundle.model_validate(response.json())
    assert sum(e.resource.__resource_type__ == "DiagnosticReport" for e in parsed.entry) == 1


def test_hostile_xml_upload_is_a_422_naming_the_file(client: TestClient) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
              b"<RestingECG><Waveform>&b;</Waveform></RestingECG>")
    response = client.post("/v1/predict", files={"files": ("laughs.xml", laughs, "application/xml")})
    assert response.status_code == 422
    body = response.json()
    assert "laughs.xml" in str(body) and "entities" in str(body)
