"""A tiny store with planted structure, written with `StoreWriter`, shared by the training tests.

Planted so that learning is checkable on a few hundred records:
- diagnosis `I48` shifts lead I by +0.6 mV (visible in the ECG);
- diagnosis `E11` follows the lab feature `Glucose__mean` only (invisible in the ECG);
- lab label `Potassium_high` raises lead V2 (visible), `Glucose_high` follows glucose; ~30 % unknown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_store import make_tiny_store

from ecgkt.config import RunConfig, load_config


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_store(tmp_path_factory.mktemp("store") / "store")


@pytest.fixture()
def smoke_config() -> RunConfig:
    torch.set_num_threads(1)
    return load_config("smoke")


@pytest.fixture()
def run_baseline_cli() -> Callable[[Path, Path, str], subprocess.CompletedProcess[str]]:
    """Runs `python -m ecgkt.cli train-baseline signal` on (store, out, config YAML text) in a fresh
    process: DDP spawns ranks and precision plugins set process-wide state. The caller asserts on
    the return code, stdout and what the run wrote under `out`."""
    return _run_baseline_cli


def _run_baseline_cli(store: Path, out: Path, config_yaml: str) -> subprocess.CompletedProcess[str]:
    config = out.parent / f"{out.name}.yaml"
    config.write_text(config_yaml)
    command = [
        sys.executable, "-m", "ecgkt.cli", "train-baseline", "signal",
        "--store", str(store), "--out", str(out), "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
