"""The transfer study end to end on the tiny store: kill -9 midway, rerun, every unit done once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "transfer_study.py"


def _command(store: Path, out: Path, results: Path, study_yaml: Path) -> list[str]:
    return [
        sys.executable, str(SCRIPT), "--store", str(store), "--out", str(out), "--preset", "smoke",
        "--study-config", str(study_yaml), "--arms", "signal,je-barlow", "--fractions", "0.5",
        "--replicates", "2", "--results", str(results),
    ]  # fmt: skip


@pytest.mark.slow
def test_study_survives_kill_9_and_finishes_on_rerun(tiny_store: Path, tmp_path: Path) -> None:
    out, results = tmp_path / "study", tmp_path / "results"
    study_yaml = tmp_path / "study.yaml"
    study_yaml.write_text("min_test_positives: 1\nbootstrap_resamples: 50\n")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    command = _command(tiny_store, out, results, study_yaml)
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((out / "units").glob("*/unit.json")):
        assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # mid-study: one unit done, the next one in training
    first.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "units").glob("*/unit.json")}
    assert done_before and (out / "study_plan.json").exists()
    plan = json.loads((out / "study_plan.json").read_text())

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    units = {p.parent.name for p in (out / "units").glob("*/unit.json")}
    assert units == {
        "pretrain-barlow_r0", "pretrain-barlow_r1",
        "signal_f0.5_r0", "signal_f0.5_r1", "je-barlow_f0.5_r0", "je-barlow_f0.5_r1",
    }  # fmt: skip
    for key, mtime in done_before.items():  # finished units were skipped, not rerun
        assert (out / "units" / key / "unit.json").stat().st_mtime_ns == mtime
    assert json.loads((out / "study_plan.json").read_text()) == plan
    report = json.loads((results / "transfer_study.json").read_text())
    je = next(c for c in report["cells"] if c["arm"] == "je-barlow")
    assert je["n_replicates"] == 2 and je["vs_signal"]["n_replicates"] == 2
    assert (results / "transfer_study.md").read_text().startswith("# Transfer study")
    assert (results / "transfer_study.png").stat().st_size > 0
    assert "## Answers" in (results / "transfer_study.md").read_text()
    # the best JE route at the largest fraction, as a config `ecgkt benchmark --config` accepts
    from ecgkt.config import load_config

    route = load_config(None, results / "transfer_route.yaml")
    assert route.preset == "smoke" and route.pretrain.objective == "barlow_twins"
    assert route.pretrain.projector.out_dim == 128 and route.finetune.optim == route.baseline.optim
    test_folds = {
        tuple(json.loads((out / "units" / f"signal_f0.5_r{r}" / "unit.json").read_text())["test_folds"]) for r in (0, 1)
    }
    assert len(test_folds) == 2  # each replicate its own test fold

    changed = subprocess.run(
        [*command[:-2], "--replicates", "3", "--results", str(results)], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert changed.returncode == 2 and "different plan" in changed.stderr

    # the matched ceiling (benchmarks/transfer_ceiling.py), plugged into the finished study's report
    from tiny_store import make_fake_ground_truth

    cohort = make_fake_ground_truth(tiny_store, tmp_path / "cohort")
    ceiling_script = ROOT / "benchmarks" / "transfer_ceiling.py"
    measured = subprocess.run(
        [sys.executable, str(ceiling_script), "--study", str(out), "--synth", str(cohort), "--results", str(results)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert measured.returncode == 0, measured.stderr[-3000:]
    key = "macro_auroc_per_replicate.ecg_params+demographics"
    reported = subprocess.run(
        [*command, "--report-only", "--ceilings", str(results / "transfer_ceiling.json"), "--ceiling-key", key],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert reported.returncode == 0, reported.stderr[-3000:]
    report = json.loads((results / "transfer_study.json").read_text())
    assert set(report["ecg_only_ceiling_per_replicate"]) == {"0", "1"}
    je = next(c for c in report["cells"] if c["arm"] == "je-barlow")
    assert je["gap_closed_ceiling"] is not None
    assert json.loads((out / "study_plan.json").read_text())["config"]["ceilings"] == str(
        results / "transfer_ceiling.json"
    )
