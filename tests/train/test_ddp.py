"""Multi-process training through Lightning's DDP strategy (2 CPU processes, gloo) — slow."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(
    tiny_store: Path, tmp_path: Path, run_baseline_cli: Callable[[Path, Path, str], subprocess.CompletedProcess[str]]
) -> None:
    out = tmp_path / "run"
    config = "preset: smoke\ntrainer:\n  accelerator: cpu\n  devices: 2\n  strategy: ddp\n  cpu_threads: 1\n"
    result = run_baseline_cli(tiny_store, out, config)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert metrics["test"]["macro_auroc"] is not None
    assert result.stdout.count("baseline signal") == 1  # one summary, printed by rank 0 only
