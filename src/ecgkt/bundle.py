"""Model bundle: everything prediction needs to run an ECG-only model, loadable without pickle.

A bundle is a folder:
    weights.safetensors   EcgOnlyModel state dict (encoder + diagnosis head + lab head)
    bundle.json           BundleManifest: versions, architecture, labels + ICD titles, preprocessing,
                          validation AUROC per label, calibration slots, training summary
    config.yaml           the resolved training RunConfig (informational; never needed to load)

Loading reads JSON, YAML is not touched, and tensors come from safetensors — nothing a user hands us
is unpickled. Bundles are written into a temporary sibling folder and renamed into place, so a
half-written bundle never exists at the final path. `bundle.json` records the SHA-256 of the weights,
and every numeric field is validated (finite temperatures > 0, thresholds in [0, 1], unique labels,
bounded architecture sizes) before anything is allocated (ecgkt.bundle_integrity).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ecgkt import __version__
from ecgkt.atomic_files import replacing_folder
from ecgkt.bundle_integrity import (
    SHA256_PATTERN,
    BundleIntegrityWarning,
    check_finite,
    header_shapes,
    sha256_file,
    verify_weight_digests,
)
from ecgkt.errors import UserError, describe_validation_error
from ecgkt.models.config import EcgEncoderConfig, HeadConfig
from ecgkt.models.encoders import EcgEncoder
from ecgkt.models.heads import MLPHead
from ecgkt.models.weights import save_weights
from ecgkt.signals.preprocess import PreprocessSpec

BUNDLE_FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "bundle.json"
CONFIG_FILE = "config.yaml"
REQUIRED_FILES = (WEIGHTS_FILE, MANIFEST_FILE)


class BundleError(UserError, RuntimeError):
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
    # weight file name → hex SHA-256 at save time; None in bundles from before digests were recorded
    weights_sha256: dict[str, str] | None = None

    @field_validator("temperature_diagnosis", "temperature_lab")
    @classmethod
    def _positive_temperature(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"a temperature must be a finite number > 0, got {value}")
        return value

    @field_validator("thresholds_diagnosis", "thresholds_lab")
    @classmethod
    def _probability_thresholds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        bad = {label: t for label, t in (value or {}).items() if not (math.isfinite(t) and 0.0 <= t <= 1.0)}
        if bad:
            raise ValueError(f"thresholds must be finite probabilities in [0, 1], got {bad}")
        return value

    @field_validator("validation_auroc_diagnosis", "validation_auroc_lab")
    @classmethod
    def _auroc_range(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        # NaN is how an undefined AUROC (one class only) is stored; anything else must be in [0, 1].
        bad = {k: v for k, v in value.items() if v is not None and not math.isnan(v) and not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"validation AUROCs must lie in [0, 1], got {bad}")
        return value

    @field_validator("weights_sha256")
    @classmethod
    def _hex_digests(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, digest in (value or {}).items():
            if name != WEIGHTS_FILE or not SHA256_PATTERN.match(digest):
                raise ValueError(f"weights_sha256: expected {WEIGHTS_FILE} → 64 lowercase hex digits, got {name!r}")
        return value

    @model_validator(mode="after")
    def _labels_present(self) -> BundleManifest:
        if not self.diagnosis_labels:
            raise ValueError("a bundle needs at least one diagnosis label")
        if not self.lab_labels:
            raise ValueError("a bundle needs at least one lab label")
        for kind, labels in (("diagnosis", self.diagnosis_labels), ("lab", self.lab_labels)):
            duplicated = sorted({label for label in labels if labels.count(label) > 1})
            if duplicated:
                raise ValueError(f"{kind} labels must be unique; repeated: {duplicated[:5]}")
            if any(not label.strip() for label in labels):
                raise ValueError(f"{kind} labels must be non-empty names")
        for kind, thresholds, labels in (
            ("diagnosis", self.thresholds_diagnosis, self.diagnosis_labels),
            ("lab", self.thresholds_lab, self.lab_labels),
        ):
            unknown = sorted(set(thresholds or {}) - set(labels))
            if unknown:
                raise ValueError(f"thresholds_{kind} names labels the bundle does not have: {unknown[:5]}")
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
    """Write the bundle atomically (a staged sibling folder renamed onto `path`), recording the weights' SHA-256."""
    target = Path(path)
    _check_model_matches(model, manifest)
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists (pass overwrite=True to replace it)")
    with replacing_folder(target) as staging:
        save_weights(staging / WEIGHTS_FILE, model, metadata={"format_version": str(BUNDLE_FORMAT_VERSION)})
        recorded = manifest.model_copy(update={"weights_sha256": {WEIGHTS_FILE: sha256_file(staging / WEIGHTS_FILE)}})
        (staging / MANIFEST_FILE).write_text(recorded.model_dump_json(indent=2) + "\n")
        if config_yaml is not None:
            (staging / CONFIG_FILE).write_text(config_yaml)
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
        raise BundleError(f"{manifest_path}: invalid bundle manifest: {describe_validation_error(error)}") from None


def load_bundle(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Bundle:
    """Read and verify a bundle folder; the model comes back in eval mode on `map_location`.

    Order matters: the manifest is validated, the weights' digest checked and the header's shapes
    compared with the architecture (built on the `meta` device) before any tensor is allocated.
    """
    root = Path(path)
    manifest = read_manifest(root)
    if manifest.ecgkt_version != __version__:
        warnings.warn(
            f"{root}: bundle written by ecgkt {manifest.ecgkt_version}, this is ecgkt {__version__}; "
            "predictions may differ from the ones validated when it was written",
            BundleIntegrityWarning,
            stacklevel=2,
        )
    weights_path = root / WEIGHTS_FILE
    verify_weight_digests(root, manifest.weights_sha256, MANIFEST_FILE, BundleError)
    with torch.device("meta"):
        expected = {key: tuple(t.shape) for key, t in EcgOnlyModel.from_manifest(manifest).state_dict().items()}
    shapes = header_shapes(weights_path, BundleError)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise BundleError(
            f"{weights_path}: weights do not match the architecture in {MANIFEST_FILE} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise BundleError(
                f"{weights_path}: shape mismatch for {key}: file has {shapes[key]}, {MANIFEST_FILE} implies {shape}"
            )
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError) as error:
        raise BundleError(f"{weights_path}: unreadable weights: {error}") from None
    check_finite(state, weights_path, BundleError)
    model = EcgOnlyModel.from_manifest(manifest)
    model.load_state_dict(state, strict=True)
    model.to(map_location).eval()
    return Bundle(model=model, manifest=manifest, path=root)
