"""Fixtures for the prediction tests: a tiny planted bundle, a calibrated copy, and input files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from predict_samples import make_bundle, make_store


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Uncalibrated: thresholds 0.5, no surrogate (the engine falls back to gradient alignment)."""
    return make_bundle(tmp_path_factory.mktemp("predict") / "bundle")


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("predict-store") / "store")


@pytest.fixture(scope="session")
def calibrated_bundle_path(tmp_path_factory: pytest.TempPathFactory, bundle_path: Path, store_path: Path) -> Path:
    from ecgkt.explain.calibrate_bundle import calibrate_bundle

    copy = tmp_path_factory.mktemp("predict-calibrated") / "bundle"
    shutil.copytree(bundle_path, copy)
    calibrate_bundle(copy, store_path)
    return copy
