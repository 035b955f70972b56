"""Standing adversarial suite for the CLI's input path (issue 18): one red line, exit 2, no traceback.

The service shares these readers (tests/serve/test_adversarial.py covers the HTTP side)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from predict_samples import realistic_ecg_mv
from typer.testing import CliRunner

from ecgkt.cli import app
from ecgkt.signals.errors import EcgInputError
from ecgkt.signals.json_ecg import MAX_JSON_VALUES, parse_json_ecg
from ecgkt.signals.leads import CANONICAL_LEADS

runner = CliRunner()


def predict(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["predict", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def assert_one_red_line(code: int, stderr: str, fragment: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert fragment in stderr, stderr


def _npy(path: Path, signal: np.ndarray, **sidecar: object) -> Path:
    np.save(path, signal)
    if sidecar:
        path.with_name(path.name + ".json").write_text(json.dumps(sidecar))
    return path


def _bomb(path: Path) -> Path:
    """1 MB on disk, ~600 MiB once decompressed (the issue's 1.2 MB → 7.5 GB case, scaled down)."""
    header = io.BytesIO()
    n = 6_600_000
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (12, n)})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("signal.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(8 * 1024 * 1024)
            for _ in range(12 * n * 8 // len(chunk)):
                member.write(chunk)
        archive.writestr("sampling_rate_hz.npy", _npy_bytes(np.array(500.0)))
    return path


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_implausible_sampling_rates(bundle_path: Path, tmp_path: Path) -> None:
    path = _npy(tmp_path / "ecg.npy", realistic_ecg_mv(fs=500, seconds=10.0))
    for rate in ("1e-5", "1e-300", "3", "0.1", "1e6"):
        code, _, stderr = predict(str(bundle_path), str(path), "--sampling-rate", rate)
        assert_one_red_line(code, stderr, "plausible range")


def test_tiny_arrays_are_not_stretched_into_a_record(bundle_path: Path, tmp_path: Path) -> None:
    path = _npy(tmp_path / "tiny.npy", np.zeros((12, 30)), sampling_rate_hz=3, leads=list(CANONICAL_LEADS))
    assert_one_red_line(*predict(str(bundle_path), str(path))[::2], "plausible range")
    short = _npy(tmp_path / "short.npy", realistic_ecg_mv(fs=500, seconds=2.0), sampling_rate_hz=500)
    assert_one_red_line(*predict(str(bundle_path), str(short))[::2], "at least 2.5 s")


def test_npz_bomb_is_refused_before_decompression(bundle_path: Path, tmp_path: Path) -> None:
    path = _bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 2 * 1024 * 1024
    assert_one_red_line(*predict(str(bundle_path), str(path))[::2], "compression bomb")


def test_npz_with_non_numeric_sampling_rate(bundle_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "text_rate.npz"
    np.savez(path, signal=realistic_ecg_mv(fs=500, seconds=10.0), sampling_rate_hz=np.array("fast"))
    assert_one_red_line(*predict(str(bundle_path), str(path))[::2], "'sampling_rate_hz' must be one number")


@pytest.mark.parametrize("spelling", ["uV", "µV", "μV", "UV"])
def test_every_microvolt_spelling_is_accepted(bundle_path: Path, tmp_path: Path, spelling: str) -> None:
    path = _npy(tmp_path / "ecg.npy", 1000 * realistic_ecg_mv(fs=500, seconds=10.0), sampling_rate_hz=500)
    code, stdout, stderr = predict(str(bundle_path), str(path), "--units", spelling)
    assert code == 0, stderr
    assert any("µV→mV" in note for note in json.loads(stdout)["notes"])


def test_json_ecg_document_is_read_by_the_cli(bundle_path: Path, tmp_path: Path) -> None:
    document = {"signal": realistic_ecg_mv(fs=500, seconds=10.0).tolist(), "sampling_rate_hz": 500, "units": "mV"}
    path = tmp_path / "ecg.json"
    path.write_text(json.dumps(document))
    code, stdout, stderr = predict(str(bundle_path), str(path))
    assert code == 0, stderr
    assert json.loads(stdout)["n_windows"] == 4


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('{"signal": [[0.0]], "sampling_rate_hz": ' + "9" * 5000 + "}", "number literal"),
        ('{"signal": [[0.0]], "sampling_rate_hz": 1e-300, "leads": ["I"], "missing_leads": "zero"}', "plausible"),
        ('{"signal": [[0.0, 1', "not valid JSON"),
    ],
)
def test_hostile_json_documents(bundle_path: Path, tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "hostile.json"
    path.write_text(body)
    assert_one_red_line(*predict(str(bundle_path), str(path))[::2], fragment)


def test_json_value_count_is_bounded_before_parsing() -> None:
    body = b'{"signal": [[' + b",".join([b"0"] * (MAX_JSON_VALUES + 1)) + b']], "sampling_rate_hz": 500}'
    with pytest.raises(EcgInputError, match="more than"):
        parse_json_ecg(body, "big.json")


def test_flat_lead_is_noted_per_lead(bundle_path: Path, tmp_path: Path) -> None:
    signal = realistic_ecg_mv(fs=500, seconds=10.0)
    signal[CANONICAL_LEADS.index("V2")] = 0.0
    path = _npy(tmp_path / "flat.npy", signal, sampling_rate_hz=500, leads=list(CANONICAL_LEADS), units="mV")
    code, stdout, stderr = predict(str(bundle_path), str(path))
    assert code == 0, stderr
    assert any("flat lead(s) V2" in note for note in json.loads(stdout)["notes"])


def test_saturated_lead_is_noted(bundle_path: Path, tmp_path: Path) -> None:
    signal = realistic_ecg_mv(fs=500, seconds=10.0)
    signal[0, 1000:1500] = 5.0  # lead I pinned at +5 mV for 1 s
    signal[0] = np.minimum(signal[0], 5.0)
    path = _npy(tmp_path / "sat.npy", signal, sampling_rate_hz=500, leads=list(CANONICAL_LEADS), units="mV")
    code, stdout, stderr = predict(str(bundle_path), str(path))
    assert code == 0, stderr
    assert any("saturated lead(s) I" in note for note in json.loads(stdout)["notes"])
