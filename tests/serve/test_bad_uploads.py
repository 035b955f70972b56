"""Every kind of bad upload gets its own clear 4xx JSON error {"error": kind, "detail": message}."""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_samples import dumps, json_document, npy_bytes, npz_bytes

from ecgkt.serve.app import create_app
from ecgkt.serve.settings import ServeSettings
from ecgkt.signals.leads import CANONICAL_LEADS


def expect_error(response, status: int, kind: str, *fragments: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == kind, body
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def one_file(name: str, data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"files": (name, data, "application/octet-stream")}


# ---- size, media type, request shape --------------------------------------------------------------


def test_declared_body_above_the_limit_is_refused_before_reading(client: TestClient) -> None:
    response = client.post("/v1/predict", files=one_file("big.npy", b"\x93NUMPY" + b"\0" * (3 * 1024 * 1024)))
    expect_error(response, 413, "upload_too_large", "2 MiB")


def test_streamed_body_above_the_limit_is_refused_while_reading(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"{" + b" " * (100 * 1024)

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    expect_error(response, 413, "upload_too_large")


def test_unsupported_content_type(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"I,II\n1,2\n", headers={"content-type": "text/csv"})
    expect_error(response, 415, "unsupported_media_type", "text/csv")


def test_multipart_without_a_file(client: TestClient) -> None:
    boundary = "ecgktboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="sampling_rate_hz"\r\n\r\n500\r\n--{boundary}--\r\n'
    ).encode()
    response = client.post(
        "/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    expect_error(response, 400, "no_file")


def test_too_many_files(client: TestClient) -> None:
    files = [("files", (f"f{i}.dat", b"\0" * 10, "application/octet-stream")) for i in range(6)]
    expect_error(client.post("/v1/predict", files=files), 400, "too_many_files")


def test_empty_file(client: TestClient) -> None:
    expect_error(client.post("/v1/predict", files=one_file("ecg.dcm", b"")), 422, "empty_file", "ecg.dcm")


def test_files_that_do_not_belong_together(client: TestClient, dicom_bytes: bytes) -> None:
    files = [
        ("files", ("a.dcm", dicom_bytes, "application/dicom")),
        ("files", ("b.dcm", dicom_bytes, "application/dicom")),
    ]
    expect_error(client.post("/v1/predict", files=files), 400, "unexpected_files", "a.dcm", "b.dcm")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"sampling_rate_hz": "fast"}, "sampling_rate_hz"),
        ({"sampling_rate_hz": "-500"}, "positive"),
        ({"units": "volts"}, "units"),
        ({"patient_name": "x"}, "unknown form field"),
    ],
)
def test_bad_form_options(client: TestClient, dicom_bytes: bytes, fields: dict[str, str], fragment: str) -> None:
    response = client.post("/v1/predict", files=one_file("ecg.dcm", dicom_bytes), data=fields)
    expect_error(response, 422, "invalid_options", fragment)


# ---- recognition by content -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("ecg.dcm", b"\x89PNG\r\n\x1a\n" + bytes(300)),  # an image renamed .dcm: no DICM at 128
        ("ecg.npy", b"NUMPY not really" + bytes(100)),
        ("ecg.bin", os.urandom(2048)),
    ],
)
def test_wrong_magic_bytes(client: TestClient, name: str, data: bytes) -> None:
    expect_error(client.post("/v1/predict", files=one_file(name, data)), 415, "unrecognised_file", name)


# ---- DICOM ------------------------------------------------------------------------------------------


def test_truncated_dicom(client: TestClient, dicom_bytes: bytes) -> None:
    truncated = dicom_bytes[: len(dicom_bytes) // 2]
    expect_error(
        client.post("/v1/predict", files=one_file("cut.dcm", truncated)), 422, "invalid_ecg", "cut.dcm", "DICOM"
    )


def test_dicom_without_waveform(client: TestClient, dicom_bytes: bytes) -> None:
    head_only = dicom_bytes[:400]
    expect_error(client.post("/v1/predict", files=one_file("x.dcm", head_only)), 422, "invalid_ecg", "no waveform")


# ---- WFDB -------------------------------------------------------------------------------------------


def test_header_without_signal_file(client: TestClient, wfdb_files: list) -> None:
    expect_error(client.post("/v1/predict", files=wfdb_files[:1]), 422, "wfdb_missing_data", "40689238.dat")


def test_signal_file_without_header(client: TestClient, wfdb_files: list) -> None:
    expect_error(client.post("/v1/predict", files=wfdb_files[1:]), 422, "wfdb_missing_header")


def test_truncated_signal_file(client: TestClient, wfdb_files: list) -> None:
    name, data, media = wfdb_files[1][1]
    files = [wfdb_files[0], ("files", (name, data[: len(data) // 3], media))]
    expect_error(client.post("/v1/predict", files=files), 422, "truncated_file", "40689238.dat")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (b"ecg 12 500 5000\n" + b"../../etc/passwd 16 200/mV 16 0 0 0 0 I\n" * 12, "not a plain file name"),
        (b"ecg 12 500 5000\n" + b"ecg.dat 16 200/mV 16 0 0 0 0 I\n" * 3, "12 signals but has 3"),
        (b"hello, this is not a header\n", "first header line"),
        (b"ecg/2 12 500 5000\n", "multi-segment"),
        (b"ecg 12 500\x00 5000\n", "binary"),
    ],
)
def test_bad_wfdb_header(client: TestClient, wfdb_files: list, header: bytes, fragment: str) -> None:
    files = [("files", ("ecg.hea", header, "text/plain")), wfdb_files[1]]
    expect_error(client.post("/v1/predict", files=files), 422, "invalid_wfdb_header", "ecg.hea", fragment)


# ---- NumPy ------------------------------------------------------------------------------------------


def test_object_array_is_refused_without_unpickling(client: TestClient) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    expect_error(client.post("/v1/predict", files=one_file("evil.npy", buffer.getvalue())), 422, "unsafe_numpy")


def test_truncated_npy(client: TestClient, ecg_mv: np.ndarray) -> None:
    data = npy_bytes(ecg_mv)
    response = client.post("/v1/predict", files=one_file("ecg.npy", data[:-1000]), data={"sampling_rate_hz": "500"})
    expect_error(response, 422, "truncated_file", "ecg.npy")


def test_npy_without_sampling_rate(client: TestClient, ecg_mv: np.ndarray) -> None:
    response = client.post("/v1/predict", files=one_file("ecg.npy", npy_bytes(ecg_mv)))
    expect_error(response, 422, "missing_sampling_rate", "sampling_rate_hz")


def test_npz_with_pickled_member(client: TestClient) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, signal=np.array([object()], dtype=object))
    expect_error(client.post("/v1/predict", files=one_file("evil.npz", buffer.getvalue())), 422, "unsafe_numpy")


def test_zip_that_is_not_an_npz(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    expect_error(
        client.post("/v1/predict", files=one_file("x.npz", buffer.getvalue())), 422, "invalid_npz", "readme.txt"
    )


def test_corrupt_zip(client: TestClient) -> None:
    expect_error(client.post("/v1/predict", files=one_file("x.npz", b"PK\x03\x04" + bytes(200))), 422, "invalid_npz")


def test_npz_without_signal(client: TestClient) -> None:
    body = npz_bytes(samples=np.zeros((12, 1000)))
    expect_error(client.post("/v1/predict", files=one_file("x.npz", body)), 422, "invalid_ecg", "'signal'")


# ---- JSON -------------------------------------------------------------------------------------------


def test_json_with_eleven_leads(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv[:11], leads=list(CANONICAL_LEADS[:11]))
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_ecg", "missing lead(s) V6")


def test_json_with_nan_only_signal(client: TestClient) -> None:
    document = {"signal": [[None] * 1000] * 12, "sampling_rate_hz": 500, "leads": list(CANONICAL_LEADS)}
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_ecg", "no finite samples")


@pytest.mark.parametrize("rate", ["500", True, None, [500], -1, 0])
def test_json_with_wrong_sampling_rate_type_or_value(client: TestClient, ecg_mv: np.ndarray, rate: object) -> None:
    document = json_document(ecg_mv[:, :1500])
    document["sampling_rate_hz"] = rate
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_json", "sampling_rate_hz")


def test_json_syntax_error(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b'{"signal": [[1, 2', headers={"content-type": "application/json"})
    expect_error(response, 422, "invalid_json", "not valid JSON")


def test_json_empty_body(client: TestClient) -> None:
    response = client.post("/v1/predict", content=b"", headers={"content-type": "application/json"})
    expect_error(response, 422, "invalid_json", "empty")


def test_json_ragged_rows(client: TestClient) -> None:
    document = {"signal": [[0.0] * 1000] * 11 + [[0.0] * 999], "sampling_rate_hz": 500}
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_json", "same length")


def test_json_unknown_key(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv[:, :1500])
    document["patient_name"] = "Jane Doe"
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_json", "patient_name")


def test_record_shorter_than_one_window(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv[:, :1000])  # 2 s at 500 Hz
    expect_error(client.post("/v1/predict", json=document), 422, "invalid_ecg", "at least 2.5 s")


# ---- routing errors are JSON too --------------------------------------------------------------------


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    expect_error(client.get("/v1/nothing"), 404, "not_found")
    expect_error(client.get("/v1/predict"), 405, "method_not_allowed")


# ---- resources: temp files, timeouts, overload ------------------------------------------------------


def test_uploads_written_to_disk_are_always_deleted(
    client: TestClient, wfdb_files: list, dicom_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: object, **kwargs: object) -> str:
        folder = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        created.append(Path(folder))
        assert oct(Path(folder).stat().st_mode & 0o777) == "0o700"
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    assert client.post("/v1/predict", files=wfdb_files).status_code == 200
    assert client.post("/v1/predict", files=one_file("cut.dcm", dicom_bytes[:5000])).status_code == 422
    truncated_npz = npz_bytes(signal=np.zeros((12, 5000)))[:-300]
    assert client.post("/v1/predict", files=one_file("x.npz", truncated_npz)).status_code == 422
    assert len(created) >= 2, "WFDB and DICOM uploads are read through a private folder"
    assert [folder for folder in created if folder.exists()] == []


@pytest.fixture()
def slow_client(bundle_path: Path) -> Iterator[TestClient]:
    """An app whose model takes 1.5 s per call, with a 0.5 s timeout and room for one request."""
    settings = ServeSettings(inference_timeout_s=0.5, inference_threads=1, max_pending=1)
    app = create_app(bundle_path, "torch", settings)
    predictor = app.state.service.predictor
    real_runner = predictor.runner

    def slow_runner(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(1.5)
        return real_runner(windows)

    predictor.runner = slow_runner
    with TestClient(app) as test_client:
        yield test_client


def test_slow_inference_times_out_then_overload_is_refused(slow_client: TestClient, ecg_mv: np.ndarray) -> None:
    document = json_document(ecg_mv)
    expect_error(slow_client.post("/v1/predict", json=document), 504, "inference_timeout", "0.5 s")
    # The timed-out job still occupies the single slot: the next request is refused, not queued.
    expect_error(slow_client.post("/v1/predict", json=document), 503, "server_busy")
    assert slow_client.get("/healthz").status_code == 200  # the event loop stays responsive
    deadline = time.monotonic() + 5
    while slow_client.app.state.service.pool.pending and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)
    assert slow_client.app.state.service.pool.pending == 0  # type: ignore[attr-defined]


def test_concurrent_requests_beyond_capacity_get_503(slow_client: TestClient, ecg_mv: np.ndarray) -> None:
    document = dumps(json_document(ecg_mv))
    statuses: list[int] = []

    def call() -> None:
        statuses.append(
            slow_client.post("/v1/predict", content=document, headers={"content-type": "application/json"}).status_code
        )

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [503, 503, 504]
