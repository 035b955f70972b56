"""Regularised fine-tuning: keep the fine-tuned ECG encoder close to the pretrained one.

The paper's stage 2 keeps the pretrained representation by freezing the first blocks and lowering
the encoder's learning rate. The alternative its future work names is an explicit penalty, which
lets every layer adapt but charges for moving away from what pretraining learnt:

- **L2-SP** (Li, Grandvalet & Davoine, "Explicit inductive bias for transfer learning with
  convolutional networks", ICML 2018): α · Σ ‖θ − θ⁰‖² over the encoder's weights, θ⁰ the pretrained
  weights. Unlike plain weight decay (pull towards 0) it pulls towards the starting point.
- **Feature-space penalty** (as in DELTA, Li et al., ICLR 2019, without its attention weights):
  β · mean_b ‖Φx(x_b) − Φx⁰(x_b)‖² / d, the squared distance between the fine-tuned and the frozen
  pretrained encoder's features of the same crop, so the *representation* rather than the weights
  is anchored.

Both are zero at initialisation (θ = θ⁰) and their gradients point from θ back to θ⁰.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ecgkt.train.modules import Batch, SupervisedModule, _flatten_windows

__all__ = [
    "RegularisedFinetuneModule",
    "feature_penalty",
    "l2_sp_penalty",
    "regularised_module_factory",
]

ANCHOR_PREFIX = "anchor__"


def l2_sp_penalty(parameters: Sequence[Tensor], anchors: Sequence[Tensor]) -> Tensor:
    """Σ_i ‖θ_i − θ⁰_i‖² over matching (parameter, anchor) pairs; the gradient is 2(θ − θ⁰)."""
    if len(parameters) != len(anchors):
        raise ValueError(f"{len(parameters)} parameters but {len(anchors)} anchors")
    if not parameters:
        raise ValueError("l2_sp_penalty needs at least one parameter")
    total = parameters[0].new_zeros(())
    for parameter, anchor in zip(parameters, anchors, strict=True):
        if parameter.shape != anchor.shape:
            raise ValueError(f"parameter {tuple(parameter.shape)} and anchor {tuple(anchor.shape)} differ")
        total = total + (parameter - anchor.detach()).pow(2).sum()
    return total


def feature_penalty(features: Tensor, anchor_features: Tensor) -> Tensor:
    """mean over the batch of ‖h − h⁰‖² / d (h⁰ detached): 0 when the features match."""
    if features.shape != anchor_features.shape or features.dim() != 2:
        raise ValueError(
            f"feature_penalty expects two equal (batch, dim) tensors, got {tuple(features.shape)} and "
            f"{tuple(anchor_features.shape)}"
        )
    return (features - anchor_features.detach()).pow(2).sum(dim=1).mean() / features.shape[1]


class RegularisedFinetuneModule(SupervisedModule):
    """SupervisedModule + L2-SP (weight `l2sp_alpha`) and feature (weight `feature_beta`) penalties.

    The anchor θ⁰ is held as non-trainable buffers (saved in checkpoints, so a resumed run keeps
    the pretrained anchor, not the weights it was resumed with); the feature anchor is a frozen copy
    of the pretrained encoder in eval mode (no dropout, no gradient).
    """

    def __init__(self, *, l2sp_alpha: float = 0.01, feature_beta: float = 0.0, **kwargs: Any) -> None:
        if l2sp_alpha < 0 or feature_beta < 0:
            raise ValueError(f"penalty weights must be >= 0, got alpha={l2sp_alpha}, beta={feature_beta}")
        super().__init__(**kwargs)
        self.l2sp_alpha = l2sp_alpha
        self.feature_beta = feature_beta
        self._anchored: list[str] = []
        self.anchor_encoder: nn.Module | None = None
        self.set_anchor()

    def set_anchor(self) -> None:
        """Take the encoder's current weights as θ⁰ (call after loading the pretrained weights)."""
        self._anchored = []
        for name, parameter in self.encoder.named_parameters():
            buffer_name = ANCHOR_PREFIX + name.replace(".", "__")
            self.register_buffer(buffer_name, parameter.detach().clone(), persistent=True)
            self._anchored.append(name)
        if self.feature_beta > 0:
            frozen = copy.deepcopy(self.encoder)
            for parameter in frozen.parameters():
                parameter.requires_grad_(False)
            self.anchor_encoder = frozen.eval()

    def train(self, mode: bool = True) -> RegularisedFinetuneModule:
        super().train(mode)
        if getattr(self, "anchor_encoder", None) is not None:
            assert self.anchor_encoder is not None
            self.anchor_encoder.eval()
        return self

    def _pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        named = dict(self.encoder.named_parameters())
        params: list[Tensor] = []
        anchors: list[Tensor] = []
        for name in self._anchored:
            parameter = named[name]
            if parameter.requires_grad:
                params.append(parameter)
                anchors.append(getattr(self, ANCHOR_PREFIX + name.replace(".", "__")))
        return params, anchors

    def penalties(self, batch: Batch) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        params, anchors = self._pairs()
        if self.l2sp_alpha > 0 and params:
            terms["l2sp"] = self.l2sp_alpha * l2_sp_penalty(params, anchors)
        if self.feature_beta > 0 and self.anchor_encoder is not None:
            x, _ = _flatten_windows(batch["x"])
            with torch.no_grad():
                anchor = self.anchor_encoder(x)
            terms["feature"] = self.feature_beta * feature_penalty(self.encoder(x), anchor)
        return terms

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        for name, term in self.penalties(batch).items():
            self.log(f"train_{name}", term, on_step=False, on_epoch=True, batch_size=len(batch["x"]))
            loss = loss + term
        return loss

    def anchored_parameters(self) -> Iterable[str]:
        return tuple(self._anchored)


def regularised_module_factory(pretrained_encoder: Path, *, l2sp_alpha: float, feature_beta: float) -> Any:
    """A `SupervisedSpec.module_factory`: the module with the pretrained encoder loaded and anchored.

    The stage loads the same weights again afterwards (`init_encoder`), which changes nothing.
    """

    def make(**kwargs: Any) -> RegularisedFinetuneModule:
        module = RegularisedFinetuneModule(l2sp_alpha=0.0, feature_beta=0.0, **kwargs)
        module.encoder.load_state_dict(load_file(str(pretrained_encoder)), strict=True)
        module.l2sp_alpha, module.feature_beta = l2sp_alpha, feature_beta
        module.set_anchor()
        return module

    return make
