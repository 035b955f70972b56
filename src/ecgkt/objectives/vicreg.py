"""VICReg loss (Bardes et al. 2022): an alternative non-contrastive objective for the same stage.

Unlike Barlow Twins it regularises each branch separately, which tolerates modalities whose
embeddings have very different scales: invariance = MSE(z1, z2); variance = hinge keeping the
per-dimension std of each branch ≥ 1; covariance = squared off-diagonal covariances / E per branch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ecgkt.objectives._checks import check_embedding_pair, full_precision


class VICRegTerms(NamedTuple):
    """The three unweighted terms (useful for logging which term dominates)."""

    invariance: Tensor
    variance: Tensor
    covariance: Tensor


def _variance_term(z: Tensor, eps: float) -> Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # unbiased, as in the paper
    return F.relu(1.0 - std).mean()


def _covariance_term(z: Tensor) -> Tensor:
    n, dim = z.shape
    centred = z - z.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off_diagonal / dim


class VICRegLoss(nn.Module):
    """loss = sim·MSE + std·(v(z1) + v(z2))/2 + cov·(c(z1) + c(z2)); defaults from the VICReg paper."""

    def __init__(
        self, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0, eps: float = 1e-4
    ) -> None:
        super().__init__()
        if min(sim_coeff, std_coeff, cov_coeff) < 0 or eps <= 0:
            raise ValueError("VICReg coefficients must be >= 0 and eps > 0")
        self.sim_coeff = sim_coeff
        self.std_coeff = std_coeff
        self.cov_coeff = cov_coeff
        self.eps = eps

    def terms(self, z1: Tensor, z2: Tensor) -> VICRegTerms:
        check_embedding_pair(z1, z2, "VICRegLoss")
        with full_precision(z1):
            z1, z2 = z1.float(), z2.float()
            return VICRegTerms(
                invariance=F.mse_loss(z1, z2),
                variance=(_variance_term(z1, self.eps) + _variance_term(z2, self.eps)) / 2.0,
                covariance=_covariance_term(z1) + _covariance_term(z2),
            )

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        t = self.terms(z1, z2)
        return self.sim_coeff * t.invariance + self.std_coeff * t.variance + self.cov_coeff * t.covariance
