"""`trainer.compile`: the config switch, the clear skip where inductor cannot run, and (slow) that a
compiled encoder trains like the eager one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from ecgkt.config import ConfigError, RunConfig, load_config
from ecgkt.evaluate.metrics import masked_bce_with_logits
from ecgkt.models.config import EcgEncoderConfig
from ecgkt.models.encoders import EcgEncoder
from ecgkt.train import modules
from ecgkt.train.data import StoreDataModule
from ecgkt.train.modules import CompileSkippedWarning, SupervisedModule, compile_encoder
from ecgkt.train.stages import run_baseline

# Inductor falls back to eager kernels for the FFT spectrum products (complex tensors) and says so.
INDUCTOR_COMPLEX_WARNING = "ignore:Torchinductor does not support code generation for complex operators"


def _is_compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None  # set by nn.Module.compile


def test_compile_switch_is_validated() -> None:
    config = load_config("smoke", overrides={"trainer": {"compile": True, "compile_mode": "max-autotune"}})
    assert config.trainer.compile and config.trainer.compile_mode == "max-autotune"
    assert load_config("paper").trainer.compile is False
    with pytest.raises(ConfigError, match=r"trainer\.compile_mode"):
        load_config("smoke", overrides={"trainer": {"compile_mode": "fastest"}})


def test_compile_is_skipped_with_a_warning_without_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modules.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    encoder = EcgEncoder(EcgEncoderConfig.model_validate({"d_model": 8, "d_state": 2, "n_layers": 1}))
    with pytest.warns(CompileSkippedWarning, match="needs a C\\+\\+ compiler"):
        assert compile_encoder(encoder) is False
    assert not _is_compiled(encoder)
    with pytest.warns(CompileSkippedWarning, match="'mps' device"):
        assert compile_encoder(encoder, device_type="mps") is False


def _first_steps(config: RunConfig, batch: dict[str, torch.Tensor], compiled: bool) -> list[float]:
    torch.manual_seed(0)
    module = SupervisedModule(
        encoder=config.encoder.model_dump(),
        head=config.finetune.head.model_dump(),
        n_labels=batch["y"].shape[1],
        optim=config.finetune.optim.model_dump(),
        freeze_layers=1,  # frozen blocks (eval mode, no grad) inside the compiled encoder
    ).train()
    if compiled:
        assert compile_encoder(module.encoder)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(2):
        torch.manual_seed(100 + step)  # the same dropout masks in both runs
        loss = masked_bce_with_logits(module.window_logits(batch)[:, 0], batch["y"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.slow
@pytest.mark.filterwarnings(INDUCTOR_COMPLEX_WARNING)
def test_compiled_encoder_gives_the_eager_loss(tiny_store: Path, smoke_config: RunConfig) -> None:
    dm = StoreDataModule(tiny_store, smoke_config.data, seed=0, target="diagnoses")
    batch = next(iter(dm.train_dataloader()))
    eager = _first_steps(smoke_config, batch, compiled=False)
    compiled = _first_steps(smoke_config, batch, compiled=True)
    assert compiled[0] == pytest.approx(eager[0], abs=1e-4)  # forward
    assert compiled[1] == pytest.approx(eager[1], abs=1e-4)  # after one step on the compiled backward


class _RecordCompiled(L.Callback):
    def __init__(self) -> None:
        self.compiled: list[bool] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.compiled.append(_is_compiled(pl_module.encoder))


@pytest.mark.slow
@pytest.mark.filterwarnings(INDUCTOR_COMPLEX_WARNING)
def test_stage_trains_with_a_compiled_encoder(tiny_store: Path, smoke_config: RunConfig, tmp_path: Path) -> None:
    config = smoke_config.model_copy(deep=True)
    config.trainer.compile = True
    config.baseline.optim.max_epochs = 1
    probe = _RecordCompiled()
    result = run_baseline("signal", config, tiny_store, tmp_path / "run", extra_callbacks=[probe])
    assert probe.compiled == [True]
    assert result.metrics["test"]["macro_auroc"] is not None
    fresh = EcgEncoder(config.encoder)  # the compiled module saved plain, loadable state_dict keys
    fresh.load_state_dict(load_file(str(result.encoder_path)), strict=True)
