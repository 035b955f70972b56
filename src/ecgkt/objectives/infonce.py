"""Symmetric InfoNCE (CLIP-style) loss: the contrastive option for the joint-embedding stage.

Within a batch, the ECG and tabular embeddings of the same encounter are the positive pair and every
other pairing is a negative. Cosine similarities / temperature form an N×N logit matrix; cross-entropy
towards the diagonal is averaged over both directions (ECG→tabular and tabular→ECG).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.objectives._checks import check_embedding_pair, full_precision


class InfoNCELoss(nn.Module):
    """loss = ½ [CE(S, I) + CE(Sᵀ, I)] with S_ij = cos(z1_i, z2_j) / temperature."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def similarity_logits(self, z1: Tensor, z2: Tensor) -> Tensor:
        return F.normalize(z1.float(), dim=1) @ F.normalize(z2.float(), dim=1).T / self.temperature

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        check_embedding_pair(z1, z2, "InfoNCELoss")
        with full_precision(z1):
            logits = self.similarity_logits(z1, z2)
            targets = torch.arange(logits.shape[0], device=logits.device)
            return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2.0
