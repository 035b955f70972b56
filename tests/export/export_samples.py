"""Builds small randomly initialised bundles for the export tests (no training needed for parity)."""

from __future__ import annotations

from pathlib import Path

import torch

from ecgkt.bundle import BundleManifest, EcgOnlyModel, save_bundle
from ecgkt.models.config import EcgEncoderConfig, HeadConfig


def make_bundle(path: Path, *, bidirectional: bool = True, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    manifest = BundleManifest(
        encoder=EcgEncoderConfig(d_model=24, n_layers=2, d_state=8, dropout=0.1, bidirectional=bidirectional),
        diagnosis_head=HeadConfig(hidden=[16], dropout=0.1),
        lab_head=HeadConfig(hidden=[], dropout=0.0),
        diagnosis_labels=["I48", "I10", "N179", "E875"],
        lab_labels=["Potassium_high", "Creatinine_high", "Troponin T_high"],
    )
    return save_bundle(path, EcgOnlyModel.from_manifest(manifest), manifest)
