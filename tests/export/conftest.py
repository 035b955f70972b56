"""A tiny randomly initialised bundle for the export tests (no training needed for parity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundles import export_bundle_at


@pytest.fixture(scope="session")
def export_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return export_bundle_at(tmp_path_factory.mktemp("export") / "bundle")
