"""Input validation and precision handling shared by the joint-embedding objectives."""

from __future__ import annotations

import torch
from torch import Tensor


def check_embedding_pair(z1: Tensor, z2: Tensor, objective: str) -> None:
    """Both views must be (N, E) with the same shape and N ≥ 2: batch statistics need two records."""
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"{objective} expects two (batch, dim) embeddings of equal shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError(f"{objective} needs a batch of at least 2 records, got {z1.shape[0]}")


def full_precision(z: Tensor) -> torch.autocast:
    """Context disabling autocast: batch statistics and correlations of E×E matrices need float32."""
    return torch.autocast(device_type=z.device.type, enabled=False)
