"""Multi-process training through Lightning's DDP strategy (2 CPU processes, gloo) — slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tiny_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "ddp.yaml"
    config.write_text("preset: smoke\ntrainer:\n  accelerator: cpu\n  devices: 2\n  strategy: ddp\n  cpu_threads: 1\n")
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "ecgkt.cli",
        "train-baseline",
        "signal",
        "--store",
        str(tiny_store),
        "--out",
        str(out),
        "--config",
        str(config),
    ]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert metrics["test"]["macro_auroc"] is not None
    assert result.stdout.count("baseline signal") == 1  # one summary, printed by rank 0 only
