"""Standing adversarial suite for the service's input path (issue 18): every hostile body gets a 4xx
with the standard error body, quickly, and never a 5xx, a traceback or a non-finite probability."""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ecgkt.signals.leads import CANONICAL_LEADS


def _json(client: TestClient, body: bytes | str) -> tuple[int, dict[str, object], float]:
    started = time.perf_counter()
    data = body.encode() if isinstance(body, str) else body
    response = client.post("/v1/predict", content=data, headers={"content-type": "application/json"})
    return response.status_code, response.json(), time.perf_counter() - started


def _assert_refused(status: int, body: dict[str, object], seconds: float, fragment: str = "") -> None:
    assert 400 <= status < 500, (status, body)
    assert set(body) == {"error", "detail"}, body
    assert fragment.lower() in str(body["detail"]).lower(), body
    assert seconds < 5.0, f"refusal took {seconds:.1f} s"


def _doc(**fields: object) -> str:
    document: dict[str, object] = {"signal": [[0.0]], "leads": ["I"], "missing_leads": "zero"}
    document.update(fields)
    return json.dumps(document)


# The exact bodies from issue 18, and their neighbours.
HOSTILE_JSON: dict[str, tuple[str, str]] = {
    "rate 1e-5 (9 GB resampling)": (_doc(sampling_rate_hz=1e-5), "plausible range"),
    "rate 1e-300 (UFuncTypeError)": (_doc(sampling_rate_hz=1e-300), "plausible range"),
    "rate 0.25, one sample (null probabilities)": (
        json.dumps({"sampling_rate_hz": 0.25, "signal": [[0.0]], "leads": [""], "missing_leads": "zero"}),
        "plausible range",
    ),
    "rate 3 Hz, 12x30 (10 s from 30 samples)": (
        json.dumps({"signal": [[0.1] * 30] * 12, "sampling_rate_hz": 3}),
        "plausible range",
    ),
    "rate 0.1 Hz, 12 values": (json.dumps({"signal": [[0.1]] * 12, "sampling_rate_hz": 0.1}), "plausible range"),
    "rate 1e6": (_doc(sampling_rate_hz=1e6), ""),
    "1 s at 500 Hz (shorter than one window)": (
        json.dumps({"signal": [[0.1] * 500] * 12, "sampling_rate_hz": 500}),
        "at least 2.5 s",
    ),
    "5000-digit integer rate": ('{"signal": [[0.0]], "sampling_rate_hz": ' + "9" * 5000 + "}", "number literal"),
    "5000-digit integer sample": ('{"signal": [[' + "1" * 5000 + ']], "sampling_rate_hz": 500}', "number literal"),
    "deep nesting (RecursionError)": ("[" * 100_000 + "]" * 100_000, "nested"),
    "deep nesting inside an object": ('{"signal": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested"),
    "string rate": (_doc(sampling_rate_hz="500"), "sampling_rate_hz"),
    "NaN rate": ('{"signal": [[0.0]], "sampling_rate_hz": NaN}', "sampling_rate_hz"),
    "Infinity rate": ('{"signal": [[0.0]], "sampling_rate_hz": Infinity}', "sampling_rate_hz"),
    "negative rate": (_doc(sampling_rate_hz=-500), "sampling_rate_hz"),
    "bool rate": (_doc(sampling_rate_hz=True), "sampling_rate_hz"),
    "top-level list": ("[1, 2, 3]", "object"),
    "top-level number": ("123", "object"),
    "empty object": ("{}", "signal"),
    "ragged rows": (json.dumps({"signal": [[0.0, 1.0], [0.0]], "sampling_rate_hz": 500}), "same length"),
    "string samples": (json.dumps({"signal": [["a"]], "sampling_rate_hz": 500}), "signal"),
    "not UTF-8": (b'{"signal": "\xff\xfe"}', ""),
    "truncated": ('{"signal": [[0.0, 1.0', "json"),
    "all NaN": (
        json.dumps({"signal": [[None] * 5000] * 12, "sampling_rate_hz": 500}),
        "no finite samples",
    ),
    "too many values": ("{" + '"signal": [[' + ",".join(["0"] * 2_100_000) + "]]}", ""),  # body limit or value limit
}


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_hostile_json_bodies_are_refused_with_the_standard_body(client: TestClient, name: str) -> None:
    body, fragment = HOSTILE_JSON[name]
    status, payload, seconds = _json(client, body)
    _assert_refused(status, payload, seconds, fragment)


def test_hostile_form_fields(client: TestClient) -> None:
    signal = np.zeros((12, 30), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, signal)
    for rate in ("1e-5", "1e-300", "3", "1" * 5000, "nan", "-1"):
        response = client.post(
            "/v1/predict",
            files={"files": ("x.npy", buffer.getvalue(), "application/octet-stream")},
            data={"sampling_rate_hz": rate, "leads": ",".join(CANONICAL_LEADS)},
        )
        assert 400 <= response.status_code < 500, (rate, response.text)
        assert set(response.json()) == {"error", "detail"}


def _bomb_npz() -> bytes:
    """A small .npz whose 'signal' member expands to ~600 MiB of zeros (declared in its .npy header)."""
    buffer = io.BytesIO()
    header = io.BytesIO()
    n = 12 * 6_600_000
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (12, n // 12)})
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("signal.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        chunk = bytes(8 * 1024 * 1024)
        for _ in range(n * 8 // len(chunk)):
            member.write(chunk)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb_npz() -> bytes:
    return _bomb_npz()


def test_npz_bomb_is_refused_before_decompression(client: TestClient, bomb_npz: bytes) -> None:
    assert len(bomb_npz) < 2 * 1024 * 1024
    started = time.perf_counter()
    response = client.post("/v1/predict", files={"files": ("bomb.npz", bomb_npz, "application/octet-stream")})
    seconds = time.perf_counter() - started
    _assert_refused(response.status_code, response.json(), seconds)
    assert response.json()["error"] == "invalid_npz"


def test_no_response_carries_a_non_finite_probability(client: TestClient, ecg_mv: np.ndarray) -> None:
    document = {"signal": ecg_mv.tolist(), "sampling_rate_hz": 500, "leads": list(CANONICAL_LEADS), "units": "mV"}
    response = client.post("/v1/predict", json=document)
    assert response.status_code == 200, response.text
    for item in (*response.json()["diagnoses"], *response.json()["labs"]):
        assert isinstance(item["probability"], float) and 0.0 <= item["probability"] <= 1.0


def test_flat_lead_is_noted_per_lead_in_the_response(client: TestClient, ecg_mv: np.ndarray) -> None:
    signal = ecg_mv.copy()
    signal[CANONICAL_LEADS.index("V2")] = 0.0
    document = {"signal": signal.tolist(), "sampling_rate_hz": 500, "leads": list(CANONICAL_LEADS), "units": "mV"}
    response = client.post("/v1/predict", json=document)
    assert response.status_code == 200, response.text
    assert any("flat lead(s) V2" in note for note in response.json()["notes"]), response.json()["notes"]


def test_service_still_answers_after_the_hostile_suite(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_a_timed_out_job_is_actually_stopped() -> None:
    """The 504 is not the end of the story: the job itself stops at its next deadline check."""
    import asyncio

    from ecgkt.serve.pool import InferencePool, JobCancelledError, check_deadline
    from ecgkt.serve.uploads import UploadError

    pool = InferencePool(threads=1, max_pending=4, timeout_s=0.2)
    outcome: dict[str, object] = {}

    def slow_job() -> None:
        started = time.monotonic()
        try:
            while time.monotonic() - started < 10:
                time.sleep(0.01)
                check_deadline()
        except JobCancelledError:
            outcome["stopped_after_s"] = time.monotonic() - started
            raise

    async def scenario() -> None:
        with pytest.raises(UploadError) as error:
            await pool.run(slow_job)
        assert error.value.status_code == 504

    try:
        asyncio.run(scenario())
        deadline = time.monotonic() + 5
        while pool.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.pending == 0
        assert float(outcome["stopped_after_s"]) < 1.0  # type: ignore[arg-type]
    finally:
        pool.shutdown()
