"""A tiny randomly initialised bundle for the export tests (no training needed for parity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from export_samples import make_bundle


@pytest.fixture(scope="session")
def export_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return make_bundle(tmp_path_factory.mktemp("export") / "bundle")
