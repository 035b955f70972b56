"""Every endpoint, and every accepted upload kind, through the ASGI app (fastapi TestClient)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_samples import assert_same_prediction, dumps, json_document, npy_bytes, npz_bytes

from ecgkt.predict.engine import Predictor
from ecgkt.signals.leads import CANONICAL_LEADS


@pytest.fixture(scope="module")
def cli_prediction(bundle_path: Path, wfdb_record: Path) -> dict[str, object]:
    """What `ecgkt predict BUNDLE RECORD` returns (the engine it uses, on the file on disk)."""
    return Predictor.from_path(bundle_path).predict_path(wfdb_record).model_dump()


def test_healthz_reports_backend_and_sets_safety_headers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["backend"] == "torch"
    assert response.json()["model_loaded"] is True
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert client.get("/healthz").headers["x-request-id"] != response.headers["x-request-id"]


def test_model_endpoint_lists_labels_metrics_and_version(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert [d["label"] for d in info["diagnoses"]] == ["I48", "I10", "N179"]
    assert info["diagnoses"][0]["title"] == "Atrial fibrillation and flutter"
    assert info["diagnoses"][0]["validation_auroc"] == pytest.approx(0.91)
    assert info["validation_macro_auroc_diagnosis"] == pytest.approx((0.91 + 0.64 + 0.71) / 3)
    assert info["labs"][0] == {"label": "Potassium_high", "title": None, "validation_auroc": 0.73, "threshold": 0.01}
    assert info["labs"][3]["validation_auroc"] is None
    assert info["bundle_format_version"] == 1
    assert info["ecgkt_version"]
    assert info["calibrated"] is True
    assert info["preprocessing"]["window_samples"] == 250
    assert info["limits"]["max_upload_mb"] == 2.0


def test_openapi_schema_documents_both_upload_forms(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/v1/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"200", "413", "415", "422", "503", "504"} <= set(predict["responses"])
    assert "/v1/report" in schema["paths"] and "/v1/model" in schema["paths"] and "/healthz" in schema["paths"]


def test_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and "/static/app.js" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text), "the page must not load anything from a CDN"
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "/v1/report" in script.text
    assert client.get("/static/style.css").status_code == 200


def test_wfdb_pair_gives_the_same_json_as_ecgkt_predict(
    client: TestClient, wfdb_files: list, cli_prediction: dict[str, object]
) -> None:
    response = client.post("/v1/predict", files=wfdb_files)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["source"] == "40689238.hea"
    assert result["n_windows"] == 4
    assert_same_prediction(result, cli_prediction)
    assert [d["probability"] for d in result["diagnoses"]] == sorted(
        (d["probability"] for d in result["diagnoses"]), reverse=True
    )
    positive = [d for d in result["diagnoses"] if d["positive"]]
    assert positive and all(d["supporting_labs"] for d in positive)


def test_dicom_upload(client: TestClient, dicom_bytes: bytes) -> None:
    response = client.post("/v1/predict", files={"files": ("ecg.dcm", dicom_bytes, "application/dicom")})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["source"] == "ecg.dcm"
    assert result["n_windows"] == 4
    assert any("resampled 1000→100 Hz" in note for note in result["notes"])


def test_npy_with_form_fields_and_with_sidecar_agree(
    client: TestClient, ecg_mv: np.ndarray, cli_prediction: dict[str, object]
) -> None:
    array = npy_bytes(ecg_mv.T.astype(np.float32))  # (n, 12): the reader orients it
    with_fields = client.post(
        "/v1/predict",
        files={"files": ("ecg.npy", array, "application/octet-stream")},
        data={"sampling_rate_hz": "500", "leads": ",".join(CANONICAL_LEADS), "units": "mV"},
    )
    assert with_fields.status_code == 200, with_fields.text
    sidecar = dumps({"sampling_rate_hz": 500, "leads": list(CANONICAL_LEADS), "units": "mV"})
    with_sidecar = client.post(
        "/v1/predict",
        files=[
            ("files", ("ecg.npy", array, "application/octet-stream")),
            ("files", ("ecg.json", sidecar, "application/json")),
        ],
    )
    assert with_sidecar.status_code == 200, with_sidecar.text
    assert_same_prediction(with_fields.json(), cli_prediction, tolerance=1e-5)
    assert_same_prediction(with_sidecar.json(), with_fields.json())


def test_npz_upload(client: TestClient, ecg_mv: np.ndarray, cli_prediction: dict[str, object]) -> None:
    body = npz_bytes(signal=ecg_mv, sampling_rate_hz=np.array(500.0), leads=np.array(CANONICAL_LEADS))
    response = client.post("/v1/predict", files={"files": ("ecg.npz", body, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "ecg.npz"
    assert_same_prediction(response.json(), cli_prediction, tolerance=1e-5)


def test_json_body_and_json_file_agree_and_lead_order_does_not_matter(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv)
    body = client.post("/v1/predict", json=document)
    assert body.status_code == 200, body.text
    assert body.json()["source"] == "request body"
    as_file = client.post("/v1/predict", files={"files": ("ecg.json", dumps(document), "application/json")})
    assert as_file.status_code == 200, as_file.text
    assert_same_prediction(as_file.json(), body.json())

    order = np.random.default_rng(0).permutation(12)
    shuffled = json_document(ecg_mv[order], leads=[CANONICAL_LEADS[i] for i in order])
    reordered = client.post("/v1/predict", json=shuffled)
    assert reordered.status_code == 200
    assert_same_prediction(reordered.json(), body.json())
    assert any("reordered" in note for note in reordered.json()["notes"])


def test_json_accepts_null_samples_as_gaps(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv)
    signal = document["signal"]
    assert isinstance(signal, list)
    for row in signal:
        row[100:150] = [None] * 50
    response = client.post("/v1/predict", content=json.dumps(document), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert any("NaN" in note for note in response.json()["notes"])


def test_model_is_loaded_once_and_shared(
    bundle_path: Path, settings, wfdb_files: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ecgkt.bundle
    from ecgkt.serve.app import create_app

    calls = []
    original = ecgkt.bundle.load_bundle

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(ecgkt.bundle, "load_bundle", counting)
    with TestClient(create_app(bundle_path, "torch", settings)) as fresh:
        for _ in range(3):
            assert fresh.post("/v1/predict", files=wfdb_files).status_code == 200
    assert len(calls) == 1


def test_no_cdn_backed_documentation_pages(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
