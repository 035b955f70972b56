"""LightningModules: joint-embedding pretraining and every supervised run (stages 2 and 3, baselines).

Two modules cover the whole paper:
- `JointEmbeddingModule` (stage 1): Φx(ECG crop) and Φm(tabular row) → projectors Θx, Θm → the
  chosen objective (Barlow Twins / VICReg / InfoNCE). No labels are touched.
- `SupervisedModule`: multi-label logits from the ECG alone (signal-only baseline, stage 2
  diagnoses, stage 3 labs) or from ECG + tabular via late fusion (the two multimodal baselines).
  Masked (optionally focal) BCE, partial freezing, discriminative learning rates, validation macro
  AUROC each epoch with 4-window sigmoid averaging.

Hyper-parameters are plain dicts (pydantic `model_dump()`s) so `save_hyperparameters` records them
in every checkpoint and in `hparams.yaml`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import warnings
from collections.abc import Iterable
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ecgkt.config import OptimConfig
from ecgkt.evaluate.metrics import masked_bce_with_logits, masked_macro_auroc
from ecgkt.models.config import EcgEncoderConfig, HeadConfig, ProjectorConfig, TabularEncoderConfig
from ecgkt.models.encoders import EcgEncoder, TabularEncoder
from ecgkt.models.heads import LateFusionClassifier, MLPHead, Projector
from ecgkt.models.s4d import ssm_parameters
from ecgkt.objectives import build_objective

Batch = dict[str, Tensor]


class EcgClassifier(nn.Module):
    """Φx followed by one head Ψ: the ECG-only network of the signal-only baseline and stages 2/3."""

    def __init__(self, encoder: EcgEncoder, head: MLPHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def _flatten_windows(x: Tensor) -> tuple[Tensor, int]:
    """(B, W, C, L) evaluation stacks → (B·W, C, L); training crops (B, C, L) pass through (W = 1)."""
    if x.dim() == 4:
        return x.flatten(0, 1), x.shape[1]
    return x, 1


def _repeat_rows(t: Tensor, times: int) -> Tensor:
    return t if times == 1 else t.repeat_interleave(times, dim=0)


def _parameter_groups(
    groups: Iterable[tuple[str, list[nn.Parameter], float, float]],
) -> list[dict[str, Any]]:
    """AdamW groups from (name, params, lr, weight_decay); frozen parameters and empty groups dropped."""
    result = []
    for name, params, lr, weight_decay in groups:
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            result.append({"name": name, "params": trainable, "lr": lr, "weight_decay": weight_decay})
    return result


def _configure_adamw(module: L.LightningModule, groups: list[dict[str, Any]], optim: OptimConfig) -> Any:
    if not groups:
        raise ValueError(f"{type(module).__name__}: nothing to train (every parameter is frozen)")
    optimizer = torch.optim.AdamW(groups)
    if optim.scheduler == "none":
        return optimizer
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optim.max_epochs)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def _split_encoder_parameters(
    encoder: nn.Module,
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(ordinary encoder weights, S4 dt/A parameters) of one encoder."""
    ssm_ids = {id(p) for p in ssm_parameters(encoder)}
    ordinary = [p for p in encoder.parameters() if id(p) not in ssm_ids]
    ssm = [p for p in encoder.parameters() if id(p) in ssm_ids]
    return ordinary, ssm


# ---- torch.compile ---------------------------------------------------------------------------------

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]


class CompileSkippedWarning(UserWarning):
    """`trainer.compile` was requested but this platform cannot compile; training runs eagerly."""


def compile_unsupported_reason(device_type: str) -> str | None:
    """Why torch.compile (inductor) cannot run here for `device_type`, or None when it can.

    Checked up front because inductor fails lazily, at the first training step, with a long
    compiler traceback; a run should instead start eagerly and say why.
    """
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version.split()[0]} on {sys.platform}"
    if device_type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "compiling for CUDA needs the `triton` package, which is not installed"
        return None
    if device_type != "cpu":
        return f"torch.compile is not supported here on the {device_type!r} device"
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(name and shutil.which(name) for name in compilers):
        return "compiling for CPU needs a C++ compiler (g++, c++ or clang++ on PATH, or $CXX)"
    return None


def compile_encoder(encoder: nn.Module, *, mode: CompileMode = "default", device_type: str = "cpu") -> bool:
    """Compile Φx in place with `torch.compile(dynamic=False)`; return whether it was compiled.

    Only the encoder, not the LightningModule: it holds ~all of the FLOPs, and Lightning's hooks,
    logging and the objectives would only add graph breaks. `nn.Module.compile` keeps the module
    object and its state_dict keys, so checkpoints, `encoder.safetensors` and resuming are the same
    as in eager mode. `dynamic=False`: training crops have one fixed shape; each evaluation batch
    shape compiles once more. Frozen blocks (eval mode, no grad) compile fine (tested).
    """
    reason = compile_unsupported_reason(device_type)
    if reason is not None:
        warnings.warn(
            f"trainer.compile ignored: {reason}; the encoder runs eagerly", CompileSkippedWarning, stacklevel=2
        )
        return False
    encoder.compile(dynamic=False, mode=mode)
    return True


# ---- stage 1 ---------------------------------------------------------------------------------------


class JointEmbeddingModule(L.LightningModule):
    """Stage 1: align z_x = Θx(Φx(x)) with z_m = Θm(Φm(m)) of the same encounter."""

    def __init__(
        self,
        *,
        encoder: dict[str, Any],
        tabular_encoder: dict[str, Any],
        projector: dict[str, Any],
        n_numeric: int,
        categorical_cardinalities: list[int],
        objective: str,
        objective_kwargs: dict[str, float],
        optim: dict[str, Any],
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim = OptimConfig(**optim)
        self.encoder = EcgEncoder(EcgEncoderConfig(**encoder))
        self.tabular_encoder = TabularEncoder(
            n_numeric, categorical_cardinalities, TabularEncoderConfig(**tabular_encoder)
        )
        projector_config = ProjectorConfig(**projector)
        self.ecg_projector = Projector(self.encoder.out_dim, projector_config)
        self.tabular_projector = Projector(self.tabular_encoder.out_dim, projector_config)
        self.objective = build_objective(objective, **objective_kwargs)  # type: ignore[arg-type]

    def embeddings(self, batch: Batch) -> tuple[Tensor, Tensor]:
        x, windows = _flatten_windows(batch["x"])
        z_x = self.ecg_projector(self.encoder(x))
        numeric = _repeat_rows(batch["numeric"], windows)
        categorical = _repeat_rows(batch["categorical"], windows)
        z_m = self.tabular_projector(self.tabular_encoder(numeric, categorical))
        return z_x, z_m

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss: Tensor = self.objective(*self.embeddings(batch))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["x"]))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        if len(batch["x"]) < 2:
            return  # batch statistics are undefined for a single record
        loss = self.objective(*self.embeddings(batch))
        self.log(
            "val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["x"]), sync_dist=True
        )

    def configure_optimizers(self) -> Any:
        ordinary, ssm = _split_encoder_parameters(self.encoder)
        rest = [
            *self.tabular_encoder.parameters(),
            *self.ecg_projector.parameters(),
            *self.tabular_projector.parameters(),
        ]
        lr, wd = self.optim.lr, self.optim.weight_decay
        groups = _parameter_groups(
            [
                ("encoder", ordinary, lr, wd),
                ("ssm", ssm, self.optim.ssm_lr or lr, 0.0),
                ("tabular+projectors", rest, lr, wd),
            ]
        )
        return _configure_adamw(self, groups, self.optim)


# ---- supervised ------------------------------------------------------------------------------------


class SupervisedModule(L.LightningModule):
    """Multi-label classifier trained with masked BCE; ECG-only or late fusion with tabular data.

    Freezing: `freeze_encoder=True` freezes all of Φx (stage 3 with a frozen encoder); otherwise
    `freeze_layers=k` freezes the input projection and the first k S4 blocks (stage 2). Frozen
    parts get no gradient, are left out of the optimiser, and stay in eval mode (no dropout).
    Learning rates: head (and tabular encoder) `lr`; encoder `lr × encoder_lr_factor`; S4 dt/A
    `ssm_lr × encoder_lr_factor` without weight decay.
    """

    def __init__(
        self,
        *,
        encoder: dict[str, Any],
        head: dict[str, Any],
        n_labels: int,
        optim: dict[str, Any],
        tabular_encoder: dict[str, Any] | None = None,
        n_numeric: int = 0,
        categorical_cardinalities: list[int] | None = None,
        focal_gamma: float = 0.0,
        freeze_layers: int = 0,
        freeze_encoder: bool = False,
        encoder_lr_factor: float = 1.0,
        label_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim = OptimConfig(**optim)
        self.focal_gamma = focal_gamma
        self.encoder_lr_factor = encoder_lr_factor
        self.label_names = list(label_names or [])
        ecg_encoder = EcgEncoder(EcgEncoderConfig(**encoder))
        head_config = HeadConfig(**head)
        self.uses_tabular = tabular_encoder is not None
        self.net: nn.Module
        if tabular_encoder is not None:
            tab = TabularEncoder(n_numeric, categorical_cardinalities or [], TabularEncoderConfig(**tabular_encoder))
            self.net = LateFusionClassifier(ecg_encoder, tab, n_labels, head_config)
        else:
            self.net = EcgClassifier(ecg_encoder, MLPHead(ecg_encoder.out_dim, n_labels, head_config))
        self.freeze_encoder = freeze_encoder
        self.apply_freezing(freeze_layers)
        self._val_probs: list[Tensor] = []
        self._val_targets: list[Tensor] = []

    @property
    def encoder(self) -> EcgEncoder:
        encoder = self.net.ecg_encoder if self.uses_tabular else self.net.encoder
        assert isinstance(encoder, EcgEncoder)
        return encoder

    def apply_freezing(self, freeze_layers: int) -> None:
        """(Re)apply the freezing rule; call again after loading pretrained encoder weights."""
        encoder = self.encoder
        if self.freeze_encoder:
            encoder.freeze_first(len(encoder.layers))
            for parameter in encoder.parameters():  # anything outside the blocks too
                parameter.requires_grad_(False)
        else:
            encoder.freeze_first(freeze_layers)
        self.train(self.training)

    def train(self, mode: bool = True) -> SupervisedModule:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    # ---- forward -------------------------------------------------------------------------------
    def window_logits(self, batch: Batch) -> Tensor:
        """Logits (B, W, K) for evaluation stacks or (B, 1, K) for training crops."""
        x, windows = _flatten_windows(batch["x"])
        if self.uses_tabular:
            logits = self.net(x, _repeat_rows(batch["numeric"], windows), _repeat_rows(batch["categorical"], windows))
        else:
            logits = self.net(x)
        return logits.view(len(batch["x"]), windows, -1)

    def predict_probabilities(self, batch: Batch) -> Tensor:
        """Sigmoid averaged over the record's windows: (B, K)."""
        return torch.sigmoid(self.window_logits(batch).float()).mean(dim=1)

    # ---- loops ---------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self.window_logits(batch)[:, 0]
        loss = masked_bce_with_logits(logits.float(), batch["y"], focal_gamma=self.focal_gamma)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self.window_logits(batch).float()
        targets = batch["y"]
        windows = logits.shape[1]
        loss = masked_bce_with_logits(
            logits.flatten(0, 1), _repeat_rows(targets, windows), focal_gamma=self.focal_gamma
        )
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)
        self._val_probs.append(torch.sigmoid(logits).mean(dim=1).detach())
        self._val_targets.append(targets.detach())

    def on_validation_epoch_start(self) -> None:
        self._val_probs.clear()
        self._val_targets.clear()

    def on_validation_epoch_end(self) -> None:
        if not self._val_probs:
            return
        probs, targets = torch.cat(self._val_probs), torch.cat(self._val_targets)
        if self.trainer.world_size > 1:  # every rank scores the whole validation set
            gathered_probs, gathered_targets = self.all_gather(probs), self.all_gather(targets)
            assert isinstance(gathered_probs, Tensor) and isinstance(gathered_targets, Tensor)
            probs, targets = gathered_probs.flatten(0, 1), gathered_targets.flatten(0, 1)
        auroc = masked_macro_auroc(targets.cpu().numpy(), probs.cpu().numpy())
        self.log("val_macro_auroc", float(auroc), prog_bar=True, sync_dist=False)
        self._val_probs.clear()
        self._val_targets.clear()

    def configure_optimizers(self) -> Any:
        encoder = self.encoder
        ordinary, ssm = _split_encoder_parameters(encoder)
        encoder_ids = {id(p) for p in encoder.parameters()}
        rest = [p for p in self.parameters() if id(p) not in encoder_ids]
        lr, wd, factor = self.optim.lr, self.optim.weight_decay, self.encoder_lr_factor
        groups = _parameter_groups(
            [
                ("head", rest, lr, wd),
                ("encoder", ordinary, lr * factor, wd),
                ("ssm", ssm, (self.optim.ssm_lr or lr) * factor, 0.0),
            ]
        )
        return _configure_adamw(self, groups, self.optim)


@torch.no_grad()
def predict_split(
    module: SupervisedModule, loader: Iterable[Batch], device: torch.device | str = "cpu"
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(probabilities, targets) of a whole evaluation loader, windows averaged; module left in eval."""
    module.eval().to(device)
    probs: list[NDArray[np.float32]] = []
    targets: list[NDArray[np.float32]] = []
    for batch in loader:
        moved = {key: value.to(device) for key, value in batch.items()}
        probs.append(module.predict_probabilities(moved).cpu().numpy().astype(np.float32))
        targets.append(batch["y"].numpy().astype(np.float32))
    return np.concatenate(probs), np.concatenate(targets)
