"""bf16 mixed precision through Lightning on CPU: the configuration a GPU user sets, exercised here.

What must hold: the run finishes, the encoder's 1×1 projections run in bf16 under autocast while the
S4 state-space part stays float32 (tests/models), and the stored weights stay float32 (a bundle
trained with bf16-mixed is loaded by float32 inference code).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors import safe_open


@pytest.mark.slow
def test_bf16_mixed_training_on_cpu(
    tiny_store: Path, tmp_path: Path, run_baseline_cli: Callable[[Path, Path, str], subprocess.CompletedProcess[str]]
) -> None:
    out = tmp_path / "run"
    result = run_baseline_cli(
        tiny_store, out, "preset: smoke\ntrainer:\n  accelerator: cpu\n  precision: bf16-mixed\n  cpu_threads: 1\n"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["macro_auroc"] is not None
    weights = sorted(out.rglob("*.safetensors"))
    assert weights, f"no safetensors written under {out}"
    with safe_open(str(weights[0]), framework="pt") as stored:
        dtypes = {str(stored.get_tensor(key).dtype) for key in stored.keys()}  # noqa: SIM118 (safe_open is not a dict)
    assert dtypes == {"torch.float32"}
