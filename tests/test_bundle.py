"""Model bundle: round trip gives identical outputs; missing files, versions and shapes are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ecgkt.bundle import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    BundleError,
    BundleManifest,
    EcgOnlyModel,
    load_bundle,
    save_bundle,
)
from ecgkt.models.config import EcgEncoderConfig, HeadConfig


def _manifest(n_diag: int = 3, n_lab: int = 2) -> BundleManifest:
    return BundleManifest(
        encoder=EcgEncoderConfig(d_model=16, d_state=4, n_layers=2),
        diagnosis_head=HeadConfig(hidden=[8]),
        lab_head=HeadConfig(hidden=[]),
        diagnosis_labels=[f"D{i}" for i in range(n_diag)],
        diagnosis_titles={"D0": "first"},
        lab_labels=[f"L{i}_high" for i in range(n_lab)],
        validation_auroc_diagnosis={"D0": 0.7, "D1": None, "D2": 0.6},
    )


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, EcgOnlyModel]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    manifest = _manifest()
    model = EcgOnlyModel.from_manifest(manifest).eval()
    path = save_bundle(tmp_path / "bundle", model, manifest, config_yaml="preset: smoke\n")
    return path, model


def test_round_trip_gives_identical_outputs(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, model = saved
    bundle = load_bundle(path)
    assert not bundle.model.training
    x = torch.randn(5, 12, 250)
    with torch.no_grad():
        expected, reloaded = model(x), bundle.model(x)
    assert torch.equal(expected[0], reloaded[0]) and torch.equal(expected[1], reloaded[1])
    assert expected[0].shape == (5, 3) and expected[1].shape == (5, 2)
    assert bundle.manifest == BundleManifest.model_validate_json((path / MANIFEST_FILE).read_text())
    assert bundle.manifest.preprocessing.window_samples == 250 and bundle.manifest.preprocessing.n_windows == 4
    assert bundle.manifest.temperature_diagnosis is None and bundle.manifest.thresholds_lab is None
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "config.yaml", "weights.safetensors"]


def test_predict_windows_averages_sigmoids(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, _ = saved
    model = load_bundle(path).model
    windows = torch.randn(2, 4, 12, 250)
    diag, lab = model.predict_windows(windows)
    with torch.no_grad():
        first = torch.sigmoid(model(windows[:, 0])[0])
        manual = torch.stack([torch.sigmoid(model(windows[:, w])[0]) for w in range(4)], 1).mean(1)
    assert torch.allclose(diag, manual, atol=1e-6)
    assert not torch.allclose(diag, first)
    assert lab.shape == (2, 2)


def test_missing_file_is_a_clear_error(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, _ = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(BundleError, match=r"incomplete model bundle, missing weights\.safetensors"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not a model bundle folder"):
        load_bundle(path.parent / "nowhere")


def test_other_format_version_is_a_clear_error(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, _ = saved
    raw = json.loads((path / MANIFEST_FILE).read_text())
    raw["format_version"] = 99
    (path / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="bundle format version 99"):
        load_bundle(path)


def test_shape_mismatch_is_a_clear_error(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, _ = saved
    raw = json.loads((path / MANIFEST_FILE).read_text())
    raw["lab_labels"] = ["A_high", "B_low", "C_high"]  # manifest now implies 3 lab outputs, weights have 2
    (path / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="shape mismatch for lab_head"):
        load_bundle(path)


@pytest.mark.filterwarnings("ignore:.*records no weight digests")
def test_foreign_weights_are_a_clear_error(saved: tuple[Path, EcgOnlyModel]) -> None:
    path, _ = saved
    raw = json.loads((path / MANIFEST_FILE).read_text())
    raw["weights_sha256"] = None  # an old bundle (no digest): the shape check must still catch it
    (path / MANIFEST_FILE).write_text(json.dumps(raw))
    state = load_file(str(path / WEIGHTS_FILE))
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(path / WEIGHTS_FILE))
    with pytest.raises(BundleError, match="unexpected"):
        load_bundle(path)
    (path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="unreadable weights"):
        load_bundle(path)


def test_save_refuses_to_overwrite_and_checks_labels(saved: tuple[Path, EcgOnlyModel], tmp_path: Path) -> None:
    path, model = saved
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(path, model, _manifest())
    with pytest.raises(BundleError, match="do not match the manifest"):
        save_bundle(tmp_path / "other", model, _manifest(n_diag=4))
    assert not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    save_bundle(path, model, _manifest(), overwrite=True)
    assert load_bundle(path).manifest.diagnosis_labels == ["D0", "D1", "D2"]
