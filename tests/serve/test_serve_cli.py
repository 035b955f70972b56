"""`ecgkt serve`: a real uvicorn process answers; bad arguments give one red line and exit code 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.serve.app import app_from_env
from ecgkt.serve.settings import ServeSettings, SettingsError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_command_runs_a_real_server(bundle_path: Path, wfdb_files: list) -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "ecgkt.cli",
        "serve",
        str(bundle_path),
        "--port",
        str(port),
        "--max-upload-mb",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("ecgkt serve did not answer /healthz within 60 s")
        files = [(field, (name, data, media)) for field, (name, data, media) in wfdb_files]
        assert httpx.post(base + "/v1/predict", files=files, timeout=30).status_code == 200
        too_big = httpx.post(
            base + "/v1/predict",
            content=b"{" + b" " * 1_200_000,
            timeout=30,
            headers={"content-type": "application/json"},
        )
        assert too_big.status_code == 413 and too_big.json()["error"] == "upload_too_large"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    access_lines = [line for line in stderr.splitlines() if "ecgkt.serve request_id=" in line]
    assert any("status=200" in line and "kind=wfdb" in line for line in access_lines), stderr
    assert not any("40689238" in line for line in access_lines)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--backend", "tensorflow"], "--backend must be torch or onnx"),
        (["--onnx", "missing.onnx", "--backend", "onnx"], "no such ONNX file"),
        (["--max-upload-mb", "0"], "max_upload_mb"),
    ],
)
def test_serve_bad_arguments(bundle_path: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["serve", str(bundle_path), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_serve_missing_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a model bundle" in result.output


def test_worker_factory_reads_the_environment(bundle_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServeSettings(max_upload_mb=3.5, inference_threads=1)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ECGKT_SERVE_BUNDLE", str(bundle_path))
    service = app_from_env().state.service
    assert service.settings == settings and service.backend == "torch"
    monkeypatch.setenv("ECGKT_SERVE_MAX_UPLOAD_MB", "lots")
    with pytest.raises(SettingsError, match="ECGKT_SERVE_MAX_UPLOAD_MB"):
        app_from_env()
    monkeypatch.delenv("ECGKT_SERVE_BUNDLE")
    with pytest.raises(SettingsError, match="ECGKT_SERVE_BUNDLE"):
        app_from_env()


def test_settings_round_trip_through_the_environment() -> None:
    settings = ServeSettings(max_upload_mb=7, inference_timeout_s=3, onnx_path=Path("/models/m.onnx"))
    assert ServeSettings.from_env(settings.to_env()) == settings
    assert ServeSettings.from_env({}) == ServeSettings()
