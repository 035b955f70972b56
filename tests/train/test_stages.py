"""Stages on a tiny store: learning happens, freezing really freezes, resume equals a straight run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ecgkt.config import RunConfig
from ecgkt.train.callbacks import SimulatedInterruptionError, StopAfterEpochs
from ecgkt.train.stages import (
    StageError,
    read_history,
    run_baseline,
    run_finetune,
    run_labs,
    run_pretrain,
)


@pytest.fixture(scope="module")
def pretrained(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ecgkt.config import load_config

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("pretrain") / "pretrain"
    result = run_pretrain(load_config("smoke"), tiny_store, out)
    assert result.metrics["best_val_loss"] is not None
    return result.encoder_path


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


def test_pretrain_writes_outputs(pretrained: Path) -> None:
    out = pretrained.parent
    for name in ("config.yaml", "metrics.json", "encoder.safetensors", "model.safetensors", "checkpoints/last.ckpt"):
        assert (out / name).exists(), name
    history = read_history(out)
    assert [row["epoch"] for row in history] == [0.0, 1.0]
    assert all("train_loss" in row and "val_loss" in row for row in history)


def test_freezing_really_freezes_inside_the_stage(
    tiny_store: Path, pretrained: Path, smoke_config: RunConfig, tmp_path: Path
) -> None:
    assert smoke_config.finetune.freeze_layers == 1
    result = run_finetune(smoke_config, tiny_store, tmp_path / "finetune", pretrained_encoder=pretrained)
    before, after = load_file(str(pretrained)), load_file(str(result.encoder_path))
    assert not _changed(before, after, "input_projection.")
    assert not _changed(before, after, "layers.0.")
    assert _changed(before, after, "layers.1.")
    metrics = json.loads((tmp_path / "finetune" / "metrics.json").read_text())
    assert metrics["labels"] == ["I48", "E11", "R07"]
    assert metrics["test"]["ci_low"] <= metrics["test"]["macro_auroc"] <= metrics["test"]["ci_high"]
    # stage 3 with a frozen encoder leaves every encoder weight untouched: one encoder, two heads
    labs = run_labs(smoke_config, tiny_store, tmp_path / "labs", encoder=result.encoder_path)
    assert not _changed(after, load_file(str(labs.encoder_path)), "")
    assert labs.metrics["labels"] == ["Potassium_high", "Glucose_high"]


def test_planted_signal_is_learned(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    config = smoke_config.model_copy(deep=True)
    config.baseline.optim.max_epochs = 4
    result = run_baseline("mm-diag", config, tiny_store, tmp_path / "mm-diag")
    assert result.metrics["test"]["macro_auroc"] > 0.6
    per_label = (tmp_path / "mm-diag" / "per_label_auroc.csv").read_text().splitlines()
    assert per_label[0].startswith("label,title,n_known,n_positive,auroc_val,auroc_test")
    assert per_label[1].startswith("I48,Atrial fibrillation and flutter")


def _last_weights(out: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert payload["epoch"] == 2
    return dict(payload["state_dict"])


def test_resume_after_interruption_equals_a_straight_run(
    tiny_store: Path, smoke_config: RunConfig, tmp_path: Path
) -> None:
    config = smoke_config.model_copy(deep=True)
    config.baseline.optim.max_epochs = 3
    config.baseline.optim.scheduler = "cosine"  # the schedule must continue, not restart
    straight = run_baseline("signal", config, tiny_store, tmp_path / "straight")
    with pytest.raises(SimulatedInterruptionError):
        run_baseline("signal", config, tiny_store, tmp_path / "killed", extra_callbacks=[StopAfterEpochs(2)])
    assert not (tmp_path / "killed" / "metrics.json").exists()
    with pytest.raises(StageError, match="interrupted run; pass --resume"):
        run_baseline("signal", config, tiny_store, tmp_path / "killed")
    resumed = run_baseline("signal", config, tiny_store, tmp_path / "killed", resume=True)
    # compare the final epoch (last.ckpt), not the best one, which may predate the interruption
    a = _last_weights(tmp_path / "straight")
    b = _last_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert resumed.metrics["test"]["macro_auroc"] == pytest.approx(straight.metrics["test"]["macro_auroc"])
    assert [row["epoch"] for row in read_history(tmp_path / "killed")] == [0.0, 1.0, 2.0]


def test_finished_runs_are_reused_or_refused(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    first = run_baseline("mm-labs", smoke_config, tiny_store, tmp_path / "run")
    with pytest.raises(StageError, match="finished run; pass --resume"):
        run_baseline("mm-labs", smoke_config, tiny_store, tmp_path / "run")
    again = run_baseline("mm-labs", smoke_config, tiny_store, tmp_path / "run", resume=True)
    assert again.metrics == first.metrics
    changed = smoke_config.model_copy(deep=True)
    changed.baseline.optim.lr = 0.5
    with pytest.raises(StageError, match=r"different config \(baseline changed\)"):
        run_baseline("mm-labs", changed, tiny_store, tmp_path / "run", resume=True)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["preset"] == "smoke"


def test_missing_encoder_is_a_clear_error(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="encoder weights not found"):
        run_finetune(smoke_config, tiny_store, tmp_path / "ft", pretrained_encoder=tmp_path / "none.safetensors")


def test_unreadable_saved_config_is_a_clear_error(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    (out / "config.yaml").write_text("encoder:\n  colour: blue\n")
    with pytest.raises(StageError, match=r"saved config of the run .* cannot be read"):
        run_baseline("signal", smoke_config, tiny_store, out, resume=True)
