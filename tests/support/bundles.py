"""The random model bundle every test that needs "some valid bundle" builds (no training needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ecgkt.bundle import BundleManifest, EcgOnlyModel, save_bundle
from ecgkt.models.config import EcgEncoderConfig, HeadConfig

__all__ = ["DIAGNOSES", "LABS", "export_bundle_at", "random_bundle"]

DIAGNOSES = ("I48", "I10", "N179", "E875")
LABS = ("Potassium_high", "Creatinine_high", "Troponin T_high")


def random_bundle(
    path: Path,
    *,
    seed: int = 0,
    diagnoses: Sequence[str] = DIAGNOSES,
    labs: Sequence[str] = LABS,
    encoder: EcgEncoderConfig | None = None,
    diagnosis_head: HeadConfig | None = None,
    lab_head: HeadConfig | None = None,
    **manifest_fields: Any,
) -> Path:
    """Save a randomly initialised (seeded) ECG-only model with the given labels and architecture."""
    torch.manual_seed(seed)
    manifest = BundleManifest(
        encoder=encoder or EcgEncoderConfig(d_model=16, n_layers=1, d_state=4, dropout=0.0),
        diagnosis_head=diagnosis_head or HeadConfig(hidden=[8], dropout=0.0),
        lab_head=lab_head or HeadConfig(hidden=[], dropout=0.0),
        diagnosis_labels=list(diagnoses),
        lab_labels=list(labs),
        **manifest_fields,
    )
    return save_bundle(path, EcgOnlyModel.from_manifest(manifest), manifest)


def export_bundle_at(path: Path, *, bidirectional: bool = True, seed: int = 0) -> Path:
    """Dropout > 0 and a hidden diagnosis layer: parity must hold for the eval-mode graph."""
    return random_bundle(
        path,
        seed=seed,
        encoder=EcgEncoderConfig(d_model=24, n_layers=2, d_state=8, dropout=0.1, bidirectional=bidirectional),
        diagnosis_head=HeadConfig(hidden=[16], dropout=0.1),
    )
