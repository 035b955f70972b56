"""Barlow Twins loss (Zbontar et al. 2021), the paper's joint-embedding objective (eq. 1).

The two "views" are the two modalities: z_x from the ECG and z_m from the tabular record of the same
encounter. Each embedding dimension is standardised over the batch (batch norm without affine), the
cross-correlation matrix C = Z_xᵀ Z_m / N is pushed towards the identity: the diagonal aligns the two
modalities (invariance), the off-diagonal decorrelates dimensions (redundancy reduction), which is
what prevents collapse without negative pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ecgkt.objectives._checks import check_embedding_pair, full_precision


def standardise_over_batch(z: Tensor, eps: float) -> Tensor:
    """Per-dimension (z − mean) / sqrt(var + eps) with the biased variance: BatchNorm1d, no affine."""
    mean = z.mean(dim=0, keepdim=True)
    var = z.var(dim=0, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(z1: Tensor, z2: Tensor, eps: float = 1e-5) -> Tensor:
    """C (E, E) with C_ij = Σ_b ẑ1_bi ẑ2_bj / N for batch-standardised ẑ."""
    n = z1.shape[0]
    return standardise_over_batch(z1.float(), eps).T @ standardise_over_batch(z2.float(), eps) / n


class BarlowTwinsLoss(nn.Module):
    """loss = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²; λ = 0.0051 as in Barlow Twins and the paper."""

    def __init__(self, lambda_offdiag: float = 0.0051, eps: float = 1e-5) -> None:
        super().__init__()
        if lambda_offdiag < 0:
            raise ValueError(f"lambda_offdiag must be >= 0, got {lambda_offdiag}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.lambda_offdiag = lambda_offdiag
        self.eps = eps

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        check_embedding_pair(z1, z2, "BarlowTwinsLoss")
        with full_precision(z1):
            c = cross_correlation(z1, z2, self.eps)
            diagonal = torch.diagonal(c)
            on_diagonal = (1.0 - diagonal).pow(2).sum()
            off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
            return on_diagonal + self.lambda_offdiag * off_diagonal
