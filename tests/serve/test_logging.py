"""Logs carry request id, size, kind, status and latency — never file names or header content."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient

IDENTIFIER = "Doe^Jane MRN 0098765"


def test_access_log_has_no_patient_identifiers(
    client: TestClient, wfdb_files: list, caplog: pytest.LogCaptureFixture
) -> None:
    _, header, media = wfdb_files[0][1]
    _, dat, dat_media = wfdb_files[1][1]
    header_with_identifier = header + f"# patient: {IDENTIFIER}\n".encode()
    files = [
        ("files", ("Doe_Jane_0098765.hea", header_with_identifier, media)),
        ("files", ("Doe_Jane_0098765.dat", dat, dat_media)),
    ]
    with caplog.at_level(logging.INFO, logger="ecgkt.serve"):
        ok = client.post("/v1/predict", files=files)
        bad = client.post("/v1/predict", files=files[:1])
    assert ok.status_code == 200 and bad.status_code == 422
    assert "Doe_Jane_0098765" in bad.json()["detail"]  # the client is told which of its files...
    lines = [record.getMessage() for record in caplog.records if record.name == "ecgkt.serve"]
    assert len(lines) == 2
    for line in lines:  # ...the log is not
        assert "0098765" not in line and "Doe" not in line
        assert re.fullmatch(
            r"request_id=[0-9a-f]{16} method=POST path=/v1/predict status=\d{3} bytes=\d+ kind=\S+ latency_ms=[\d.]+",
            line,
        ), line
    assert "status=200" in lines[0] and "kind=wfdb" in lines[0]
    assert "status=422" in lines[1]
    assert ok.headers["x-request-id"] in lines[0]
