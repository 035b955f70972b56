"""POST /v1/report: the HTML fragment the page shows (tracing, diagnoses, supporting labs)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_report_fragment_shows_tracing_diagnoses_and_supporting_labs(client: TestClient, wfdb_files: list) -> None:
    response = client.post("/v1/report", files=wfdb_files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.lstrip().startswith("<section") and "<html" not in html  # a fragment, not a page
    assert "<svg" in html
    for title in ("Atrial fibrillation and flutter", "Essential (primary) hypertension"):
        assert title in html
    assert "Potassium_high" in html or "Creatinine_high" in html
    assert "not a medical device" in html
    assert "40689238.hea" in html and "/tmp" not in html  # the client's name, never the server's temp path


def test_report_errors_are_json(client: TestClient, wfdb_files: list) -> None:
    response = client.post("/v1/report", files=wfdb_files[:1])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "wfdb_missing_data"


def test_report_escapes_hostile_file_names(client: TestClient, dicom_bytes: bytes) -> None:
    name = '<img src=x onerror="alert(1)">.dcm'
    response = client.post("/v1/report", files={"files": (name, dicom_bytes, "application/dicom")})
    assert response.status_code == 200, response.text
    assert "<img src=x" not in response.text and "&lt;img src=x" in response.text
