"""Tampered bundles (issue 18): every edit is refused with a clear error, or loads with a clear warning.

Each case edits a freshly saved bundle the way a hostile or careless hand would, then checks both the
library (`load_bundle` → BundleError naming the problem) and the CLI (`ecgkt bundle-hash` → one red
line, exit code 2, no traceback).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from bundles import random_bundle
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner, Result

from ecgkt import __version__
from ecgkt.bundle import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    BundleError,
    load_bundle,
)
from ecgkt.bundle_integrity import BundleIntegrityWarning, bundle_digest, sha256_file, verify_digest
from ecgkt.cli import app
from ecgkt.cli_errors import show_user_warnings


@pytest.fixture()
def bundle(tmp_path: Path, one_thread: None) -> Path:
    return random_bundle(
        tmp_path / "bundle",
        diagnoses=["I10", "I48"],
        labs=["K_high", "NA_low"],
        temperature_diagnosis=1.2,
        temperature_lab=0.9,
        thresholds_diagnosis={"I10": 0.3, "I48": 0.6},
        thresholds_lab={"K_high": 0.5, "NA_low": 0.4},
    )


def _edit_manifest(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    raw = json.loads((path / MANIFEST_FILE).read_text())
    change(raw)
    (path / MANIFEST_FILE).write_text(json.dumps(raw))


def _flip_one_bit(path: Path) -> None:
    weights = path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes, past the header
    weights.write_bytes(bytes(data))


def _nan_tensor(path: Path) -> None:
    state = load_file(str(path / WEIGHTS_FILE))
    key = next(k for k in state if k.startswith("diagnosis_head"))
    state[key] = torch.full_like(state[key], math.nan)
    save_file(state, str(path / WEIGHTS_FILE))
    # re-record the digest so only the NaN check can catch it (an attacker can edit bundle.json too)
    _edit_manifest(path, lambda raw: raw.update(weights_sha256={WEIGHTS_FILE: sha256_file(path / WEIGHTS_FILE)}))


def _set(key: str, value: Any) -> Callable[[Path], None]:
    return lambda path: _edit_manifest(path, lambda raw: raw.__setitem__(key, value))


def _set_threshold(value: float) -> Callable[[Path], None]:
    return lambda path: _edit_manifest(path, lambda raw: raw["thresholds_diagnosis"].__setitem__("I10", value))


def _set_encoder(key: str, value: Any) -> Callable[[Path], None]:
    return lambda path: _edit_manifest(path, lambda raw: raw["encoder"].__setitem__(key, value))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "bit flip": (_flip_one_bit, "differs from the .* recorded in bundle.json"),
    "NaN tensor": (_nan_tensor, "holds NaN or infinite values"),
    "temperature 0": (_set("temperature_diagnosis", 0.0), "temperature must be a finite number > 0"),
    "temperature -1": (_set("temperature_lab", -1.0), "temperature must be a finite number > 0"),
    "NaN threshold": (_set_threshold(math.nan), r"thresholds must be finite probabilities in \[0, 1\]"),
    "threshold 1.5": (_set_threshold(1.5), r"thresholds must be finite probabilities in \[0, 1\]"),
    "duplicated labels": (_set("diagnosis_labels", ["I10", "I10"]), "labels must be unique"),
    "d_state 1e9": (_set_encoder("d_state", 1_000_000_000), "d_state"),
    "d_model 1e6": (_set_encoder("d_model", 1_000_000), "d_model"),
    "bad digest text": (_set("weights_sha256", {WEIGHTS_FILE: "xyz"}), "64 lowercase hex digits"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_bundle_is_refused(bundle: Path, case: str) -> None:
    tamper, message = CASES[case]
    tamper(bundle)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle)
    result = CliRunner().invoke(app, ["bundle-hash", str(bundle)])
    assert result.exit_code == 2, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)
    assert result.output.count("error:") == 1


def test_intact_bundle_loads_silently_and_hashes(bundle: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(bundle)
    result = CliRunner().invoke(app, ["bundle-hash", str(bundle)])
    assert result.exit_code == 0
    digest = result.output.strip()
    assert digest == bundle_digest(bundle) and len(digest) == 64
    verify_digest(bundle, digest.upper(), BundleError)
    with pytest.raises(BundleError, match="not the expected"):
        verify_digest(bundle, "0" * 64, BundleError)
    with pytest.raises(BundleError, match="64 hex digits"):
        verify_digest(bundle, "abc", BundleError)


def test_calibration_edit_keeps_the_weight_digest_but_changes_the_bundle_digest(bundle: Path) -> None:
    before = bundle_digest(bundle)
    _set_threshold(0.25)(bundle)
    assert load_bundle(bundle).manifest.thresholds_diagnosis == {"I10": 0.25, "I48": 0.6}
    assert bundle_digest(bundle) != before


def _invoke_showing_warnings(bundle: Path) -> Result:
    """`ecgkt bundle-hash` with the CLI's warning display (pytest replaces it while recording warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        show_user_warnings()
        return CliRunner().invoke(app, ["bundle-hash", str(bundle)])


def test_old_bundle_without_digest_loads_with_a_warning(bundle: Path) -> None:
    _edit_manifest(bundle, lambda raw: raw.pop("weights_sha256"))
    with pytest.warns(BundleIntegrityWarning, match="records no weight digests"):
        load_bundle(bundle)
    result = _invoke_showing_warnings(bundle)
    assert result.exit_code == 0 and result.output.count("warning:") == 1


def test_future_version_loads_with_a_warning(bundle: Path) -> None:
    _set("ecgkt_version", "99.0.0")(bundle)
    with pytest.warns(BundleIntegrityWarning, match=f"ecgkt 99.0.0, this is ecgkt {__version__}"):
        load_bundle(bundle)
    result = _invoke_showing_warnings(bundle)
    assert result.exit_code == 0 and result.output.count("warning:") == 1


def test_serve_refuses_an_unexpected_digest(bundle: Path) -> None:
    result = CliRunner().invoke(app, ["serve", str(bundle), "--expect-sha256", "0" * 64])
    assert result.exit_code == 2 and "not the expected" in result.output
