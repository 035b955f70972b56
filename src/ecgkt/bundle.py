"""Model bundle: everything prediction needs to run an ECG-only model, loadable without pickle.

A bundle is a folder:
    weights.safetensors   EcgOnlyModel state dict (encoder + diagnosis head + lab head)
    bundle.json           BundleManifest: versions, architecture, labels + ICD titles, preprocessing,
                          validation AUROC per label, calibration slots, training summary
    config.yaml           the resolved training RunConfig (informational; never needed to load)

Loading reads JSON, YAML is not touched, and tensors come from safetensors — nothing a user hands us
is unpickled. Bundles are written into a temporary sibling folder and renamed into place, so a
half-written bundle never exists at the final path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ecgkt import __version__
from ecgkt.models.config import EcgEncoderConfig, HeadConfig
from ecgkt.models.encoders import EcgEncoder
from ecgkt.models.heads import MLPHead
from ecgkt.signals.preprocess import PreprocessSpec

BUNDLE_FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "bundle.json"
CONFIG_FILE = "config.yaml"
REQUIRED_FILES = (WEIGHTS_FILE, MANIFEST_FILE)


class BundleError(RuntimeError):
    """A bundle that cannot be loaded or saved: missing file, other format version, shape mismatch."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The one preprocessing contract (ecgkt.signals.preprocess); reads earlier bundle manifests unchanged.
BundlePreprocessing = PreprocessSpec


class BundleManifest(_Strict):
    format_version: int = BUNDLE_FORMAT_VERSION
    ecgkt_version: str = __version__
    created_utc: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    encoder: EcgEncoderConfig
    diagnosis_head: HeadConfig
    lab_head: HeadConfig
    diagnosis_labels: list[str]
    diagnosis_titles: dict[str, str] = Field(default_factory=dict)
    lab_labels: list[str]
    lab_reference_ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    preprocessing: BundlePreprocessing = Field(default_factory=lambda: BundlePreprocessing())
    validation_auroc_diagnosis: dict[str, float | None] = Field(default_factory=dict)
    validation_auroc_lab: dict[str, float | None] = Field(default_factory=dict)
    temperature_diagnosis: float | None = None
    temperature_lab: float | None = None
    thresholds_diagnosis: dict[str, float] | None = None
    thresholds_lab: dict[str, float] | None = None
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _labels_present(self) -> BundleManifest:
        if not self.diagnosis_labels:
            raise ValueError("a bundle needs at least one diagnosis label")
        if not self.lab_labels:
            raise ValueError("a bundle needs at least one lab label")
        if self.preprocessing.window_samples * self.preprocessing.n_windows > round(
            self.preprocessing.sampling_rate_hz * self.preprocessing.record_seconds
        ):
            raise ValueError("preprocessing: window_samples × n_windows exceeds the record length")
        return self


class EcgOnlyModel(nn.Module):
    """The deployable model: one encoder Φx serving the diagnosis head Ψy and the lab head Ψm."""

    def __init__(
        self,
        encoder: EcgEncoderConfig,
        n_diagnoses: int,
        n_labs: int,
        diagnosis_head: HeadConfig,
        lab_head: HeadConfig,
    ) -> None:
        super().__init__()
        self.encoder = EcgEncoder(encoder)
        self.diagnosis_head = MLPHead(self.encoder.out_dim, n_diagnoses, diagnosis_head)
        self.lab_head = MLPHead(self.encoder.out_dim, n_labs, lab_head)

    @classmethod
    def from_manifest(cls, manifest: BundleManifest) -> EcgOnlyModel:
        return cls(
            manifest.encoder,
            len(manifest.diagnosis_labels),
            len(manifest.lab_labels),
            manifest.diagnosis_head,
            manifest.lab_head,
        )

    def encode(self, x: Tensor) -> Tensor:
        """(B, 12, L) → h_x (B, d_model)."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 12, 250) → (diagnosis logits (B, K), lab logits (B, P))."""
        h = self.encode(x)
        return self.diagnosis_head(h), self.lab_head(h)

    @torch.no_grad()
    def predict_windows(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """(B, W, 12, L) window stacks → sigmoid probabilities averaged over the W windows."""
        batch, n_windows = windows.shape[:2]
        diag, lab = self(windows.flatten(0, 1))
        return (
            torch.sigmoid(diag.float()).view(batch, n_windows, -1).mean(1),
            torch.sigmoid(lab.float()).view(batch, n_windows, -1).mean(1),
        )


@dataclass(frozen=True)
class Bundle:
    model: EcgOnlyModel
    manifest: BundleManifest
    path: Path


def _check_model_matches(model: EcgOnlyModel, manifest: BundleManifest) -> None:
    n_diag = model.diagnosis_head.out_dim
    n_lab = model.lab_head.out_dim
    if n_diag != len(manifest.diagnosis_labels) or n_lab != len(manifest.lab_labels):
        raise BundleError(
            f"model outputs ({n_diag} diagnoses, {n_lab} labs) do not match the manifest's labels "
            f"({len(manifest.diagnosis_labels)} diagnoses, {len(manifest.lab_labels)} labs)"
        )


def save_bundle(
    path: str | os.PathLike[str],
    model: EcgOnlyModel,
    manifest: BundleManifest,
    config_yaml: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the bundle atomically: a temporary sibling folder renamed onto `path`."""
    target = Path(path)
    _check_model_matches(model, manifest)
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format_version": str(BUNDLE_FORMAT_VERSION)})
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")
        if config_yaml is not None:
            (staging / CONFIG_FILE).write_text(config_yaml)
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, trash / "bundle")
            os.replace(staging, target)
            shutil.rmtree(trash)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_manifest(path: str | os.PathLike[str]) -> BundleManifest:
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a model bundle folder (it does not exist or is not a directory)")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise BundleError(f"{root}: incomplete model bundle, missing {', '.join(missing)}")
    manifest_path = root / MANIFEST_FILE
    try:
        raw = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{manifest_path}: not valid JSON: {error}") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format version {version!r}, this ecgkt ({__version__}) reads version "
            f"{BUNDLE_FORMAT_VERSION}; re-export the bundle with a matching ecgkt"
        )
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as error:
        raise BundleError(f"{manifest_path}: invalid bundle manifest: {error}") from None


def load_bundle(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Bundle:
    """Read a bundle folder; the model comes back in eval mode on `map_location`."""
    root = Path(path)
    manifest = read_manifest(root)
    weights_path = root / WEIGHTS_FILE
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError) as error:
        raise BundleError(f"{weights_path}: unreadable weights: {error}") from None
    model = EcgOnlyModel.from_manifest(manifest)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise BundleError(
            f"{weights_path}: weights do not match the architecture in {MANIFEST_FILE} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise BundleError(
                f"{weights_path}: shape mismatch for {key}: file has {tuple(state[key].shape)}, "
                f"{MANIFEST_FILE} implies {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    return Bundle(model=model, manifest=manifest, path=root)
