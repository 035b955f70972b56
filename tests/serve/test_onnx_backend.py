"""The service on onnxruntime answers like the service on PyTorch (within float tolerance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_samples import assert_same_prediction

from ecgkt.export.onnx import export_onnx
from ecgkt.serve.app import create_app
from ecgkt.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def onnx_client(bundle_path: Path) -> Iterator[TestClient]:
    """Backend onnx without a file: the app exports the bundle at start-up (parity-checked)."""
    with TestClient(create_app(bundle_path, "onnx", ServeSettings())) as test_client:
        yield test_client


def test_onnx_backend_gives_the_same_json_as_torch(
    client: TestClient, onnx_client: TestClient, wfdb_files: list, dicom_bytes: bytes
) -> None:
    assert onnx_client.get("/healthz").json()["backend"] == "onnx"
    assert onnx_client.get("/v1/model").json()["backend"] == "onnx"
    for files in (wfdb_files, {"files": ("ecg.dcm", dicom_bytes, "application/dicom")}):
        torch_result = client.post("/v1/predict", files=files)
        onnx_result = onnx_client.post("/v1/predict", files=files)
        assert torch_result.status_code == onnx_result.status_code == 200
        assert_same_prediction(onnx_result.json(), torch_result.json(), tolerance=1e-5)
        supports = [
            [lab["label"] for lab in d["supporting_labs"]] for d in onnx_result.json()["diagnoses"] if d["positive"]
        ]
        assert all(supports)


def test_onnx_backend_with_a_given_file(
    bundle_path: Path, tmp_path: Path, client: TestClient, wfdb_files: list
) -> None:
    onnx_file = export_onnx(bundle_path, tmp_path / "model.onnx").onnx_path
    settings = ServeSettings(onnx_path=onnx_file)
    with TestClient(create_app(bundle_path, "onnx", settings)) as onnx_client:
        result = onnx_client.post("/v1/predict", files=wfdb_files)
    assert result.status_code == 200
    assert_same_prediction(result.json(), client.post("/v1/predict", files=wfdb_files).json(), tolerance=1e-5)
