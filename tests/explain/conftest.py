"""Fixtures for the explanation tests; the builders live in tests/predict/predict_samples.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from predict_samples import make_bundle, make_store, write_ground_truth


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("explain") / "bundle")


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("explain-store") / "store")


@pytest.fixture(scope="session")
def ground_truth_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ground_truth(tmp_path_factory.mktemp("explain-gt") / "ground_truth")
