"""Small modules on top of the backbones: projectors Θ (pretraining only), heads Ψ, late fusion.

Projectors follow the Barlow Twins recipe (Linear → BatchNorm → ReLU → Linear): the loss acts on z,
and the encoder features h *before* the projector are what transfers to the downstream heads.
Heads are deliberately light so the diagnosis and lab tasks read information already in h_x.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ecgkt.models.config import HeadConfig, ProjectorConfig
from ecgkt.models.encoders import EcgEncoder, TabularEncoder


class MLPHead(nn.Module):
    """(B, in_dim) → (B, out_dim) logits: [Linear → ReLU → Dropout] per hidden size, then Linear."""

    def __init__(self, in_dim: int, out_dim: int, config: HeadConfig) -> None:
        super().__init__()
        if in_dim <= 0 or out_dim <= 0:
            raise ValueError(f"MLPHead needs positive in_dim and out_dim, got {in_dim} and {out_dim}")
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in config.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class Projector(nn.Module):
    """Θ: (B, in_dim) → (B, out_dim) = Linear → BatchNorm1d → ReLU → Linear."""

    def __init__(self, in_dim: int, config: ProjectorConfig) -> None:
        super().__init__()
        if in_dim <= 0:
            raise ValueError(f"Projector needs a positive in_dim, got {in_dim}")
        self.net = nn.Sequential(
            nn.Linear(in_dim, config.hidden),
            nn.BatchNorm1d(config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.out_dim),
        )
        self.in_dim = in_dim
        self.out_dim = config.out_dim

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class LateFusionClassifier(nn.Module):
    """Multimodal baseline (MDS-ED style late fusion): concat(Φx(x), Φm(numeric, categorical)) → Ψ.

    Needs every modality at inference; it is the upper bound the ECG-only model is compared with.
    """

    def __init__(
        self, ecg_encoder: EcgEncoder, tabular_encoder: TabularEncoder, out_dim: int, head: HeadConfig
    ) -> None:
        super().__init__()
        self.ecg_encoder = ecg_encoder
        self.tabular_encoder = tabular_encoder
        self.head = MLPHead(ecg_encoder.out_dim + tabular_encoder.out_dim, out_dim, head)

    def forward(self, x: Tensor, numeric: Tensor, categorical: Tensor) -> Tensor:
        fused = torch.cat([self.ecg_encoder(x), self.tabular_encoder(numeric, categorical)], dim=1)
        return self.head(fused)
